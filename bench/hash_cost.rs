//! Times a password hash and a verification with the configured argon2
//! parameters (`SESAME_ARGON2_*`, or the defaults), through sesame's own
//! hasher, and prints the medians as one JSON line for `bench/load.py`.
//!
//!     cargo run --release --example hash_cost [SAMPLES]

use std::time::{Duration, Instant};

use clap::Parser;
use sesame::config::ServeArgs;
use sesame::domain::password::{NewPassword, PasswordHasher, Verdict};

/// The server's own settings, read from the environment like `sesame serve`.
#[derive(Parser)]
struct Settings {
    #[command(flatten)]
    serve: ServeArgs,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let samples: usize = match std::env::args().nth(1) {
        Some(n) => n.parse()?,
        None => 15,
    };
    let config = Settings::parse_from(["hash_cost"]).serve.into_config()?;
    let hasher = PasswordHasher::new(config.argon2, 1).await?;
    let password = NewPassword::unchecked("correct horse battery staple");
    let mut hash_times = Vec::with_capacity(samples);
    let mut verify_times = Vec::with_capacity(samples);
    let mut stored = String::new();
    for _ in 0..samples {
        let started = Instant::now();
        stored = hasher.hash(&password).await?;
        hash_times.push(started.elapsed());
    }
    for _ in 0..samples {
        let started = Instant::now();
        let verdict = hasher.verify(password.expose(), Some(&stored)).await?;
        verify_times.push(started.elapsed());
        anyhow::ensure!(verdict == Verdict::Correct, "verification failed");
    }
    let p = config.argon2;
    println!(
        "{{\"hash_ms\":{:.3},\"verify_ms\":{:.3},\"samples\":{samples},\"memory_kib\":{},\"iterations\":{},\"parallelism\":{}}}",
        median_ms(&mut hash_times),
        median_ms(&mut verify_times),
        p.memory_kib,
        p.iterations,
        p.parallelism
    );
    Ok(())
}

fn median_ms(times: &mut [Duration]) -> f64 {
    times.sort();
    times[times.len() / 2].as_secs_f64() * 1000.0
}
