//! Idle connections: how many authenticated connections a server holds, and the memory
//! each costs it.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde::Serialize;
use tokio::task::JoinSet;

use super::connection::{next_text, open};
use super::process::Server;
use crate::Result;

/// Connections opened before the baseline memory is read, so the server's first-use
/// allocations are not charged to the connections measured.
const WARM_UP: usize = 20;
/// Connections opened at once.
const CONCURRENCY: usize = 64;
/// Time for the servers' memory to settle before reading it.
const SETTLE: Duration = Duration::from_secs(2);

/// What one server did.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Idle {
    /// Connections asked for.
    pub(crate) opened: usize,
    /// Connections still open after they settled.
    pub(crate) held: usize,
    /// Connections opened and authenticated per second.
    pub(crate) opened_per_second: f64,
    /// Resident memory before, after the warm-up connections.
    pub(crate) rss_before: u64,
    /// Resident memory with every connection open.
    pub(crate) rss_after: u64,
    /// The difference per connection.
    pub(crate) bytes_per_connection: f64,
}

/// Holds a connection open, answering what needs answering, until it ends.
fn hold(tasks: &mut JoinSet<()>, mut socket: super::connection::Socket) {
    tasks.spawn(async move { while next_text(&mut socket).await.is_ok() {} });
}

/// Opens `count` idle connections to `server` and measures what they cost it.
pub(crate) async fn measure(server: &Server, count: usize) -> Result<Idle> {
    let mut tasks = JoinSet::new();
    let connect = |range: std::ops::Range<usize>| {
        futures_util::stream::iter(
            range.map(|i| async move { open(server, &format!("idle-{i}"), &[]).await }),
        )
        .buffer_unordered(CONCURRENCY)
    };
    let mut warm = connect(0..WARM_UP);
    while let Some(socket) = warm.next().await {
        hold(&mut tasks, socket?);
    }
    tokio::time::sleep(SETTLE).await;
    let rss_before = server.rss_bytes()?;

    let started = Instant::now();
    let mut opening = connect(WARM_UP..WARM_UP + count);
    while let Some(socket) = opening.next().await {
        hold(&mut tasks, socket?);
    }
    let opened_per_second = count as f64 / started.elapsed().as_secs_f64();
    tokio::time::sleep(SETTLE).await;
    let rss_after = server.rss_bytes()?;
    // A task that ended is a connection the server closed.
    let total = tasks.len();
    let mut ended = 0;
    while tasks.try_join_next().is_some() {
        ended += 1;
    }
    let held = total.saturating_sub(ended).saturating_sub(WARM_UP);
    tasks.shutdown().await;
    Ok(Idle {
        opened: count,
        held,
        opened_per_second,
        rss_before,
        rss_after,
        bytes_per_connection: rss_after.saturating_sub(rss_before) as f64 / count as f64,
    })
}
