//! The server load generator: the reference server beside a Socket.IO server on Node,
//! the same work for both, in the same run, on 127.0.0.1.

mod connection;
mod cpu;
mod fanout;
mod idle;
mod process;

use std::path::Path;

use serde::Serialize;

pub(crate) use fanout::Fanout;
pub(crate) use idle::Idle;
use process::Server;

use crate::Result;
use crate::stats::median;

/// Descriptors beyond one per idle connection: the warm-up and fan-out connections,
/// the store, logs and the runtime.
const DESCRIPTOR_HEADROOM: u64 = 1_024;

/// How much load; bounded so a run stops by itself in a minute or two.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Settings {
    /// Idle connections opened.
    pub(crate) idle: usize,
    /// Participants receiving each fan-out message.
    pub(crate) receivers: usize,
    /// Messages per fan-out run.
    pub(crate) messages: usize,
    /// Unacknowledged messages the sender keeps in flight.
    pub(crate) window: usize,
    /// Fan-out runs per server (the median is reported).
    pub(crate) runs: usize,
}

/// One server's figures.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ServerLoad {
    /// Which server.
    pub(crate) server: &'static str,
    /// Idle connections.
    pub(crate) idle: Idle,
    /// Every fan-out run.
    pub(crate) fanout: Vec<Fanout>,
    /// Median deliveries per second.
    pub(crate) per_second: f64,
    /// Median of the runs' p50 latency.
    pub(crate) p50_ms: f64,
    /// Median of the runs' p99 latency.
    pub(crate) p99_ms: f64,
}

/// Both servers' figures.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct LoadReport {
    /// The load applied.
    pub(crate) settings: Settings,
    /// The reference server, then Socket.IO.
    pub(crate) servers: Vec<ServerLoad>,
}

/// Runs the idle and fan-out scenarios against both servers.
pub(crate) async fn run(
    server_binary: &Path,
    js_dir: &Path,
    settings: Settings,
) -> Result<LoadReport> {
    // Every idle connection is a descriptor here and one in the server (which
    // inherits this process's limit), besides the fan-out's and the processes' own.
    let descriptors = settings.idle as u64 + DESCRIPTOR_HEADROOM;
    let limit = rlimit::increase_nofile_limit(descriptors)
        .map_err(|err| format!("cannot raise the open-file limit: {err}"))?;
    if limit < descriptors {
        return Err(format!(
            "BENCH_IDLE={} needs {descriptors} open files per process; the hard limit is {limit} (raise `ulimit -Hn`, or lower BENCH_IDLE)",
            settings.idle
        ));
    }
    let max_connections = settings.idle + DESCRIPTOR_HEADROOM as usize;
    let servers = [
        Server::relaywire(server_binary, max_connections).await?,
        Server::socketio(js_dir).await?,
    ];
    let mut idle = Vec::new();
    for server in &servers {
        let result = idle::measure(server, settings.idle).await?;
        eprintln!(
            "bench: {}: {} idle connections held of {}, {:.1} KiB each",
            server.kind.name(),
            result.held,
            result.opened,
            result.bytes_per_connection / 1024.0
        );
        idle.push(result);
    }
    // Runs alternate between the servers, so drift on a shared machine hits both.
    let mut fanouts: Vec<Vec<Fanout>> = vec![Vec::new(); servers.len()];
    for run in 1..=settings.runs {
        for (server, results) in servers.iter().zip(&mut fanouts) {
            let result = fanout::run(
                server,
                run,
                settings.receivers,
                settings.messages,
                settings.window,
            )
            .await?;
            eprintln!(
                "bench: {}: fan-out run {run}: {:.0} deliveries/s, p50 {:.2} ms, p99 {:.2} ms",
                server.kind.name(),
                result.per_second,
                result.p50_ms,
                result.p99_ms
            );
            results.push(result);
        }
    }
    let servers = servers
        .iter()
        .zip(idle)
        .zip(fanouts)
        .map(|((server, idle), fanout)| {
            let of = |f: fn(&Fanout) -> f64| {
                median(&fanout.iter().map(f).collect::<Vec<_>>()).unwrap_or(f64::NAN)
            };
            ServerLoad {
                server: server.kind.name(),
                idle,
                per_second: of(|r| r.per_second),
                p50_ms: of(|r| r.p50_ms),
                p99_ms: of(|r| r.p99_ms),
                fanout,
            }
        })
        .collect();
    Ok(LoadReport { settings, servers })
}
