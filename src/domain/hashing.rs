//! argon2id on a fixed set of threads, each reusing one working memory.
//!
//! argon2's cost is its memory: `m` KiB (19 MiB by default) written and read
//! for every hash. The argon2 crate's `hash_password` allocates and zeroes
//! that memory for every hash; on tokio's blocking pool (which grows a new
//! thread whenever the others are busy) every thread's malloc arena then
//! kept a freed 19 MiB buffer, and a burst of logins grew the process to
//! hundreds of MiB although only one hash ran at a time. Here `limit`
//! threads each keep one buffer, so hashing memory is bounded by
//! `limit × m`, and no hash allocates or zeroes memory.
//!
//! The queue in front of the threads is bounded too: a job needs a
//! [`Place`], and there are only as many places as the threads can work
//! through in about a second. Without the bound, a flood of password checks
//! queued without end and every other login waited behind it. A job whose
//! caller stopped waiting (the client left and its request was dropped) is
//! skipped instead of run.
//!
//! "About a second" is counted in hashes at a running average of what the
//! jobs took ([`Sizing::Work`]), starting from one hash timed at start-up.
//! The start-up hash alone was a poor measure: it also allocates its
//! memory, and a machine busy at that moment (a deploy, a neighbour's
//! build) made the queue a fraction of its size for good, so logins the
//! threads had time for were refused as busy.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use argon2::password_hash::{Output, ParamsString, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, PasswordHash, Version};
use rand::rngs::OsRng;

/// A job for a hashing thread, given that thread's working memory.
type Job = Box<dyn FnOnce(&mut Memory) + Send>;

/// A hashing thread's working memory: allocated at its first hash, then
/// kept, at the size the configured parameters need.
pub struct Memory {
    blocks: Vec<Block>,
    usual: usize,
}

impl Memory {
    /// Memory for hashes of `usual` blocks (1 KiB each: `m` of the parameters).
    pub fn new(usual: usize) -> Memory {
        Memory {
            blocks: Vec::new(),
            usual,
        }
    }

    /// Runs `f` on `needed` blocks: the kept ones, or, for a hash with more
    /// than the usual cost (an old hash with other parameters), a buffer
    /// that is freed afterwards, so the bound holds.
    fn with<T>(&mut self, needed: usize, f: impl FnOnce(&mut [Block]) -> T) -> T {
        if needed > self.usual {
            return f(&mut vec![Block::default(); needed]);
        }
        if self.blocks.len() < self.usual {
            self.blocks = vec![Block::default(); self.usual];
        }
        f(&mut self.blocks[..needed])
    }
}

/// `limit` threads that run argon2, in the order the jobs came, with at
/// most a capacity of jobs waiting or running (see [`Sizing`]).
pub struct HashThreads {
    jobs: mpsc::Sender<Job>,
    counts: Arc<Counts>,
}

/// How many jobs may wait or run at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sizing {
    /// This many (at least one per thread).
    Fixed(usize),
    /// As many as the threads run in `work`, at a running average of the
    /// time a job ran, which starts at `first` (one hash timed at start-up).
    Work { work: Duration, first: Duration },
}

/// The weight of the newest job in the running average of a job's run
/// time: 1/8, so a change in the machine's speed moves the queue's size
/// within a few dozen hashes, and one slow hash does not.
const AVERAGE_WEIGHT: u64 = 8;

/// A thread's jobs a second at most, whatever the measurements say.
const MAX_PLACES_PER_THREAD: usize = 10_000;

/// What the queue did, for tests and metrics; and its size.
#[derive(Debug)]
struct Counts {
    threads: usize,
    /// `Some(work)`: the capacity follows the average job time.
    work: Option<Duration>,
    /// How many jobs may hold a place now.
    capacity: AtomicUsize,
    /// The largest capacity so far.
    peak_capacity: AtomicUsize,
    /// The running average of a job's run time, in nanoseconds.
    average_ns: AtomicU64,
    /// Jobs holding a place: waiting or running.
    queued: AtomicUsize,
    /// The most jobs that ever held a place at once.
    high_water: AtomicUsize,
    ran: AtomicU64,
    skipped: AtomicU64,
    refused: AtomicU64,
    /// Told each time a place is given back (see [`HashThreads::place_freed`]).
    freed: tokio::sync::Notify,
}

impl Counts {
    fn new(threads: usize, sizing: Sizing) -> Counts {
        let (work, capacity, average) = match sizing {
            Sizing::Fixed(n) => (None, n.max(threads), Duration::ZERO),
            Sizing::Work { work, first } => (Some(work), places(threads, work, first), first),
        };
        Counts {
            threads,
            work,
            capacity: AtomicUsize::new(capacity),
            peak_capacity: AtomicUsize::new(capacity),
            average_ns: AtomicU64::new(average.as_nanos() as u64),
            queued: AtomicUsize::new(0),
            high_water: AtomicUsize::new(0),
            ran: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            freed: tokio::sync::Notify::new(),
        }
    }

    /// A job ran for `took`: moves the average, and with it the capacity.
    fn ran_for(&self, took: Duration) {
        let Some(work) = self.work else {
            return;
        };
        let sample = took.as_nanos().min(u64::MAX as u128) as u64;
        let update = |average: u64| {
            // average + (sample − average) / weight, without going negative.
            Some(if sample >= average {
                average + (sample - average) / AVERAGE_WEIGHT
            } else {
                average - (average - sample) / AVERAGE_WEIGHT
            })
        };
        let Ok(before) = self
            .average_ns
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, update)
        else {
            return;
        };
        let average = update(before).unwrap_or(before);
        let capacity = places(self.threads, work, Duration::from_nanos(average));
        self.capacity.store(capacity, Ordering::Release);
        self.peak_capacity.fetch_max(capacity, Ordering::AcqRel);
    }
}

/// How many jobs `threads` threads run in `work` when one takes `cost`: at
/// least one per thread.
fn places(threads: usize, work: Duration, cost: Duration) -> usize {
    let per_thread = work.as_secs_f64() / cost.as_secs_f64().max(1e-6);
    threads * (per_thread.floor() as usize).clamp(1, MAX_PLACES_PER_THREAD)
}

/// A snapshot of the hashing queue's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueStats {
    /// How many jobs may wait or run at once, now.
    pub capacity: usize,
    /// The largest capacity since start (it follows the jobs' run time).
    pub peak_capacity: usize,
    /// The running average of a job's run time (zero for a fixed size).
    pub average: Duration,
    /// Jobs waiting or running now.
    pub queued: usize,
    /// The most jobs that waited or ran at once since start.
    pub high_water: usize,
    /// Jobs run (each one argon2 hash).
    pub ran: u64,
    /// Jobs not run because their caller had stopped waiting.
    pub skipped: u64,
    /// Jobs refused because the queue was full ([`Busy`]).
    pub refused: u64,
}

/// The hashing queue is full: more hashes wait than the threads can run in
/// about a second. The request is answered `503 BUSY` instead of queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy;

impl std::fmt::Display for Busy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the password hashing queue is full")
    }
}

impl std::error::Error for Busy {}

/// A place in the hashing queue, taken before the work that leads to a hash
/// (so a request refused as [`Busy`] has done nothing yet); given back when
/// its job ends, or when it is dropped unused.
pub struct Place {
    counts: Arc<Counts>,
}

impl Drop for Place {
    fn drop(&mut self) {
        self.counts.queued.fetch_sub(1, Ordering::AcqRel);
        self.counts.freed.notify_one();
    }
}

impl HashThreads {
    /// Starts `limit` threads whose memory fits hashes with `params`, taking
    /// as many jobs at once as `sizing` says (at least one per thread); they
    /// stop when this is dropped.
    pub fn start(limit: usize, params: &Params, sizing: Sizing) -> anyhow::Result<HashThreads> {
        let (sender, receiver) = mpsc::channel::<Job>();
        let receiver = Arc::new(Mutex::new(receiver));
        let limit = limit.max(1);
        for i in 0..limit {
            let receiver = receiver.clone();
            let memory = Memory::new(params.block_count());
            std::thread::Builder::new()
                .name(format!("sesame-hash-{i}"))
                .spawn(move || serve(&receiver, memory))
                .context("starting a password hashing thread failed")?;
        }
        Ok(HashThreads {
            jobs: sender,
            counts: Arc::new(Counts::new(limit, sizing)),
        })
    }

    /// Takes a place in the queue, or [`Busy`] when every place is taken.
    pub fn reserve(&self) -> Result<Place, Busy> {
        let counts = &self.counts;
        let taken = counts
            .queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |queued| {
                (queued < counts.capacity.load(Ordering::Acquire)).then_some(queued + 1)
            });
        match taken {
            Ok(before) => {
                counts.high_water.fetch_max(before + 1, Ordering::AcqRel);
                Ok(Place {
                    counts: counts.clone(),
                })
            }
            Err(_) => {
                counts.refused.fetch_add(1, Ordering::Relaxed);
                Err(Busy)
            }
        }
    }

    /// [`Busy`] (counted as refused) when every place is taken now; else
    /// nothing: a look, not a place, so a later [`HashThreads::reserve`]
    /// may still be refused.
    pub fn refuse_if_full(&self) -> Result<(), Busy> {
        let counts = &self.counts;
        if counts.queued.load(Ordering::Acquire) < counts.capacity.load(Ordering::Acquire) {
            return Ok(());
        }
        counts.refused.fetch_add(1, Ordering::Relaxed);
        Err(Busy)
    }

    /// Waits until a place is given back, or `at_most` has passed. Each
    /// place given back ends one such wait (or the next one to start, if
    /// none waits).
    pub async fn place_freed(&self, at_most: Duration) {
        let _ = tokio::time::timeout(at_most, self.counts.freed.notified()).await;
    }

    /// The queue's counters now.
    pub fn stats(&self) -> QueueStats {
        let counts = &self.counts;
        QueueStats {
            capacity: counts.capacity.load(Ordering::Acquire),
            peak_capacity: counts.peak_capacity.load(Ordering::Acquire),
            average: Duration::from_nanos(counts.average_ns.load(Ordering::Acquire)),
            queued: counts.queued.load(Ordering::Acquire),
            high_water: counts.high_water.load(Ordering::Acquire),
            ran: counts.ran.load(Ordering::Acquire),
            skipped: counts.skipped.load(Ordering::Acquire),
            refused: counts.refused.load(Ordering::Acquire),
        }
    }

    /// Runs `job` in `place` on the next free hashing thread, with that
    /// thread's working memory, and waits for its result without blocking
    /// the runtime. If this future is dropped before the job starts (the
    /// request was abandoned), the job is skipped.
    pub async fn run<T: Send + 'static>(
        &self,
        place: Place,
        job: impl FnOnce(&mut Memory) -> T + Send + 'static,
    ) -> anyhow::Result<T> {
        let (done, result) = tokio::sync::oneshot::channel();
        let counts = self.counts.clone();
        let job: Job = Box::new(move |memory| {
            // Held until the job ends (or unwinds), and given back before
            // the result is: whoever sees the result sees the place free.
            let place = place;
            if done.is_closed() {
                counts.skipped.fetch_add(1, Ordering::Relaxed);
                return;
            }
            counts.ran.fetch_add(1, Ordering::Relaxed);
            let started = Instant::now();
            let result = job(memory);
            counts.ran_for(started.elapsed());
            drop(place);
            let _ = done.send(result);
        });
        self.jobs
            .send(job)
            .map_err(|_| anyhow::anyhow!("the hashing threads have stopped"))?;
        result.await.context("a password hashing job failed")
    }
}

/// A hashing thread: takes jobs until the queue is dropped.
fn serve(jobs: &Mutex<Receiver<Job>>, mut memory: Memory) {
    loop {
        let job = match jobs.lock() {
            Ok(queue) => match queue.recv() {
                Ok(job) => job,
                Err(_) => return,
            },
            Err(_) => return,
        };
        // A panic is a broken invariant: it fails that one request (its
        // answer channel is dropped), not the thread.
        if catch_unwind(AssertUnwindSafe(|| job(&mut memory))).is_err() {
            memory.blocks = Vec::new();
        }
    }
}

/// Hashes a password into a PHC string (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`),
/// exactly as the argon2 crate's `hash_password` does, in `memory`.
pub fn hash_in(memory: &mut Memory, params: &Params, password: &[u8]) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    let mut salt_bytes = [0u8; 64];
    let salt_bytes = salt
        .as_salt()
        .decode_b64(&mut salt_bytes)
        .map_err(|e| anyhow::anyhow!("argon2 salt: {e}"))?;
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    let output_len = params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN);
    let output = Output::init_with(output_len, |out| {
        memory
            .with(params.block_count(), |blocks| {
                argon2.hash_password_into_with_memory(password, salt_bytes, out, blocks)
            })
            .map_err(argon2::password_hash::Error::from)
    })
    .map_err(|e| anyhow::anyhow!("argon2 hashing failed: {e}"))?;
    let hash = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(params)
            .map_err(|e| anyhow::anyhow!("argon2 parameters: {e}"))?,
        salt: Some(salt.as_salt()),
        hash: Some(output),
    };
    Ok(hash.to_string())
}

/// Whether `password` matches `stored`, computed with the stored hash's own
/// algorithm, version and parameters (as the argon2 crate's
/// `verify_password` does), in `memory`. The comparison takes constant time.
pub fn verify_in(memory: &mut Memory, stored: &PasswordHash<'_>, password: &[u8]) -> bool {
    recompute(memory, stored, password).is_some_and(|computed| {
        // `Output`'s equality takes constant time.
        stored.hash.is_some_and(|expected| computed == expected)
    })
}

/// The hash of `password` with the salt, algorithm, version and parameters
/// of `stored`; `None` if `stored` is not a usable argon2 hash.
fn recompute(memory: &mut Memory, stored: &PasswordHash<'_>, password: &[u8]) -> Option<Output> {
    let (salt, expected) = (stored.salt?, stored.hash?);
    let algorithm = Algorithm::try_from(stored.algorithm).ok()?;
    let version = match stored.version {
        Some(v) => Version::try_from(v).ok()?,
        None => Version::default(),
    };
    let params = Params::try_from(stored).ok()?;
    let argon2 = Argon2::new(algorithm, version, params.clone());
    let mut salt_bytes = [0u8; 64];
    let salt_bytes = salt.decode_b64(&mut salt_bytes).ok()?;
    Output::init_with(expected.len(), |out| {
        memory
            .with(params.block_count(), |blocks| {
                argon2.hash_password_into_with_memory(password, salt_bytes, out, blocks)
            })
            .map_err(argon2::password_hash::Error::from)
    })
    .ok()
}

#[cfg(test)]
mod tests {
    use argon2::{PasswordHasher as _, PasswordVerifier as _};

    use super::*;

    fn cheap(m: u32) -> Params {
        Params::new(m, 1, 1, None).unwrap()
    }

    #[test]
    fn hashes_are_those_of_the_argon2_crate() {
        let mut memory = Memory::new(1024);
        let ours = hash_in(&mut memory, &cheap(1024), b"correct horse").unwrap();
        assert!(ours.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"), "{ours}");
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(
            Argon2::default()
                .verify_password(b"correct horse", &parsed)
                .is_ok()
        );

        let theirs = Argon2::new(Algorithm::Argon2id, Version::V0x13, cheap(2048))
            .hash_password(b"correct horse", &SaltString::generate(&mut OsRng))
            .unwrap()
            .to_string();
        let parsed = PasswordHash::new(&theirs).unwrap();
        assert!(verify_in(&mut memory, &parsed, b"correct horse"));
        assert!(!verify_in(&mut memory, &parsed, b"correct horsE"));
    }

    #[test]
    fn memory_is_kept_at_the_usual_size_only() {
        let mut memory = Memory::new(1024);
        assert!(memory.blocks.is_empty(), "allocated at the first hash");
        let usual = hash_in(&mut memory, &cheap(1024), b"pw").unwrap();
        assert_eq!(memory.blocks.len(), 1024);
        let smaller = hash_in(&mut memory, &cheap(512), b"pw").unwrap();
        let larger = hash_in(&mut memory, &cheap(4096), b"pw").unwrap();
        assert_eq!(memory.blocks.len(), 1024);
        for stored in [&usual, &smaller, &larger] {
            let parsed = PasswordHash::new(stored).unwrap();
            assert!(verify_in(&mut memory, &parsed, b"pw"), "{stored}");
            assert!(!verify_in(&mut memory, &parsed, b"pW"), "{stored}");
        }
        assert_eq!(memory.blocks.len(), 1024);
    }

    #[tokio::test]
    async fn jobs_run_on_the_hashing_threads() {
        let threads = HashThreads::start(2, &cheap(1024), Sizing::Fixed(4)).unwrap();
        let name = threads
            .run(threads.reserve().unwrap(), |_| {
                std::thread::current().name().map(str::to_owned)
            })
            .await
            .unwrap();
        assert!(name.unwrap().starts_with("sesame-hash-"));
        let failed = threads
            .run(threads.reserve().unwrap(), |_| -> () {
                panic!("broken invariant")
            })
            .await;
        assert!(failed.is_err());
        let place = threads.reserve().unwrap();
        assert!(
            threads.run(place, |_| 1).await.is_ok(),
            "the thread survived"
        );
        assert_eq!(threads.stats().queued, 0, "every place was given back");
    }

    #[tokio::test]
    async fn a_full_queue_refuses_and_frees_its_places() {
        let threads = HashThreads::start(1, &cheap(8), Sizing::Fixed(2)).unwrap();
        let first = threads.reserve().unwrap();
        let second = threads.reserve().unwrap();
        assert_eq!(threads.reserve().err(), Some(Busy));
        assert_eq!(threads.refuse_if_full(), Err(Busy));
        drop(first);
        assert_eq!(threads.refuse_if_full(), Ok(()));
        let third = threads.reserve().unwrap();
        drop((second, third));
        let stats = threads.stats();
        assert_eq!((stats.queued, stats.high_water, stats.refused), (0, 2, 2));
    }

    #[tokio::test]
    async fn a_job_nobody_waits_for_is_skipped() {
        let threads = Arc::new(HashThreads::start(1, &cheap(8), Sizing::Fixed(4)).unwrap());
        // The only thread is held until `release` fires.
        let (release, hold) = std::sync::mpsc::channel::<()>();
        let held = threads.clone();
        let blocker = tokio::spawn(async move {
            let place = held.reserve().unwrap();
            held.run(place, move |_| hold.recv().is_ok()).await
        });
        // Wait until the thread runs the blocker, so the next job queues behind it.
        while threads.stats().ran == 0 {
            tokio::task::yield_now().await;
        }
        let abandoned = threads.run(threads.reserve().unwrap(), |_| ());
        // Polled once (the job is queued), then dropped: its caller left.
        let waited = tokio::time::timeout(std::time::Duration::ZERO, abandoned).await;
        assert!(waited.is_err(), "the job waits behind the blocker");
        release.send(()).unwrap();
        assert!(blocker.await.unwrap().unwrap());
        let place = threads.reserve().unwrap();
        threads.run(place, |_| ()).await.unwrap();
        let stats = threads.stats();
        assert_eq!(
            (stats.ran, stats.skipped, stats.queued),
            (2, 1, 0),
            "{stats:?}"
        );
    }

    #[tokio::test]
    async fn the_queue_holds_a_second_of_the_jobs_as_they_run_now() {
        let work = Duration::from_secs(1);
        // Timed slow at start-up (100 ms: 10 places per thread), the jobs
        // then run in microseconds: the queue grows.
        let fast = HashThreads::start(
            2,
            &cheap(8),
            Sizing::Work {
                work,
                first: Duration::from_millis(100),
            },
        )
        .unwrap();
        assert_eq!(fast.stats().capacity, 20);
        for _ in 0..30 {
            fast.run(fast.reserve().unwrap(), |_| ()).await.unwrap();
        }
        let stats = fast.stats();
        // 100 ms × (7/8)^30 ≈ 1.8 ms at most: over 500 places per thread.
        assert!(stats.average <= Duration::from_millis(2), "{stats:?}");
        assert!(stats.capacity >= 1000, "{stats:?}");
        assert_eq!(stats.capacity, places(2, work, stats.average), "{stats:?}");
        assert_eq!(stats.peak_capacity, stats.capacity, "{stats:?}");

        // Timed fast (1 ms: 1,000 places), the jobs then take 20 ms or more
        // each: the queue shrinks, and a full one refuses.
        let slow = HashThreads::start(
            1,
            &cheap(8),
            Sizing::Work {
                work,
                first: Duration::from_millis(1),
            },
        )
        .unwrap();
        for _ in 0..8 {
            let place = slow.reserve().unwrap();
            slow.run(place, |_| std::thread::sleep(Duration::from_millis(20)))
                .await
                .unwrap();
        }
        let stats = slow.stats();
        // At least 20 − 19 × (7/8)^8 ≈ 13.5 ms: at most 74 places.
        assert!(stats.capacity <= 74, "{stats:?}");
        assert_eq!(stats.peak_capacity, 1000, "{stats:?}");
        let places: Vec<_> = (0..stats.capacity)
            .map(|_| slow.reserve().unwrap())
            .collect();
        assert_eq!(slow.reserve().err(), Some(Busy));
        drop(places);
    }

    #[test]
    fn places_are_a_second_of_work_and_at_least_one_per_thread() {
        let second = Duration::from_secs(1);
        assert_eq!(places(2, second, Duration::from_millis(40)), 50);
        assert_eq!(places(4, second, Duration::from_millis(300)), 12);
        assert_eq!(places(2, second, Duration::from_secs(3)), 2);
        assert_eq!(places(1, second, Duration::ZERO), MAX_PLACES_PER_THREAD);
    }
}
