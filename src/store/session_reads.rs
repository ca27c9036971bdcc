//! On PostgreSQL, the session lookups that wait at the same moment share
//! one query.
//!
//! Every authenticated request reads its session and user (see
//! [`super::Store::live_session`]). On PostgreSQL each read is a round trip
//! to the server plus the one sqlx makes as the connection goes back to its
//! pool, and the server's cost per statement, not per row, is what bounds
//! authenticated requests (measured with `bench/load.py --database
//! postgres`, the database sharing a core with the load: `me` at 16–19% of
//! `ping`'s rate; batched, 56%, about 14 lookups per query at 64
//! connections). So lookups are batched the way
//! a queue at a counter is: the first one goes at once; those that arrive
//! while [`IN_FLIGHT`] queries are out wait for the next free one and go
//! together, as one `WHERE s.id = ANY($1)`. Nothing waits on a timer, so an
//! idle server answers one lookup as fast as before.
//!
//! It changes nothing anyone can see. A lookup's query is sent after the
//! lookup was asked for, so it sees every write committed before the
//! request came (a logout through another instance ends the token at the
//! next request, as before); there is no cache. A batch that fails answers
//! nobody: each of its lookups runs its own query through the pool, so a
//! fault is reported and classified as it always was.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::Utc;
use sqlx::postgres::PgPool;
use tokio::sync::{Semaphore, mpsc, oneshot};
use uuid::Uuid;

use super::sessions::{LiveSessionRow, live_session_query};

/// How many batch queries may be out at once (each holds a connection of
/// the pool while it runs).
const IN_FLIGHT: usize = 2;

/// The most lookups one query answers.
const MAX_BATCH: usize = 256;

/// A handle to the task that batches the lookups.
pub(super) struct SessionReads {
    lookups: mpsc::UnboundedSender<Lookup>,
}

/// One waiting lookup.
struct Lookup {
    session: Uuid,
    user: Uuid,
    answer: oneshot::Sender<Result<Option<LiveSessionRow>, BatchFailed>>,
}

/// The batch this lookup was in failed: the lookup runs on its own.
struct BatchFailed;

#[derive(sqlx::FromRow)]
struct BatchRow {
    session_id: Uuid,
    session_user_id: Uuid,
    #[sqlx(flatten)]
    live: LiveSessionRow,
}

impl SessionReads {
    /// Starts the batching task on the current runtime; it ends when the
    /// last handle is dropped.
    pub(super) fn start(pool: PgPool) -> SessionReads {
        let (lookups, queue) = mpsc::unbounded_channel();
        tokio::spawn(run(pool, queue));
        SessionReads { lookups }
    }

    /// The live session `session_id` of `user_id`, as
    /// [`super::Store::live_session`] reads it; `None` when the caller must
    /// read it itself (its batch failed, or the ids are not UUIDs).
    pub(super) async fn read(
        &self,
        session_id: &str,
        user_id: &str,
    ) -> Option<Option<LiveSessionRow>> {
        let (Ok(session), Ok(user)) = (Uuid::parse_str(session_id), Uuid::parse_str(user_id))
        else {
            return None;
        };
        let (answer, answered) = oneshot::channel();
        self.lookups
            .send(Lookup {
                session,
                user,
                answer,
            })
            .ok()?;
        answered.await.ok()?.ok()
    }
}

/// Takes the lookups in batches: whatever waits when a query may go out
/// goes in that query.
async fn run(pool: PgPool, mut queue: mpsc::UnboundedReceiver<Lookup>) {
    let permits = Arc::new(Semaphore::new(IN_FLIGHT));
    while let Some(first) = queue.recv().await {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(lookup) => batch.push(lookup),
                Err(_) => break,
            }
        }
        let pool = pool.clone();
        tokio::spawn(async move {
            answer(&pool, batch).await;
            drop(permit);
        });
    }
}

/// Runs one query for `batch` and answers each lookup in it.
async fn answer(pool: &PgPool, batch: Vec<Lookup>) {
    static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        live_session_query(
            "s.id AS session_id, s.user_id AS session_user_id, ",
            "s.id = ANY($1)",
            "$2",
        )
    });
    let mut ids: Vec<Uuid> = batch.iter().map(|l| l.session).collect();
    ids.sort_unstable();
    ids.dedup();
    let rows = sqlx::query_as::<_, BatchRow>(&SQL)
        .bind(&ids)
        .bind(Utc::now())
        .fetch_all(pool)
        .await;
    let rows: HashMap<Uuid, BatchRow> = match rows {
        Ok(rows) => rows.into_iter().map(|row| (row.session_id, row)).collect(),
        Err(error) => {
            tracing::debug!(%error, lookups = batch.len(), "a batch of session lookups failed; each runs alone");
            for lookup in batch {
                let _ = lookup.answer.send(Err(BatchFailed));
            }
            return;
        }
    };
    for lookup in batch {
        let found = rows
            .get(&lookup.session)
            .filter(|row| row.session_user_id == lookup.user)
            .map(|row| row.live.clone());
        // The request may have gone (its client hung up): nobody to tell.
        let _ = lookup.answer.send(Ok(found));
    }
}
