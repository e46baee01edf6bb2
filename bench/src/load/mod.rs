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

/// One deployment's fan-out, for the scale-out rows.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct DeploymentLoad {
    /// What ran: the server, its store and bus.
    pub(crate) deployment: &'static str,
    /// Server processes the participants were spread over.
    pub(crate) nodes: usize,
    /// Every fan-out run.
    pub(crate) fanout: Vec<Fanout>,
    /// Median deliveries per second.
    pub(crate) per_second: f64,
    /// Median of the runs' p50 latency.
    pub(crate) p50_ms: f64,
    /// Median of the runs' p99 latency.
    pub(crate) p99_ms: f64,
    /// Median CPU seconds of all its processes per 1,000 deliveries.
    pub(crate) cpu_ms_per_1000: f64,
}

/// A statement PostgreSQL ran during the scale-out rows (`pg_stat_statements`).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct StatementTime {
    /// The statement, whitespace folded, cut short.
    pub(crate) statement: String,
    /// Times it ran.
    pub(crate) calls: u64,
    /// Milliseconds spent executing it, in all.
    pub(crate) total_ms: f64,
}

/// Where PostgreSQL's time went in the scale-out rows.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct StoreProfile {
    /// The statements that took the most execution time.
    pub(crate) top: Vec<StatementTime>,
    /// Statements run, in all.
    pub(crate) calls: u64,
    /// Milliseconds spent executing statements, in all.
    pub(crate) total_ms: f64,
    /// Chat messages stored.
    pub(crate) messages: u64,
}

/// Both servers' figures.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct LoadReport {
    /// The load applied.
    pub(crate) settings: Settings,
    /// The reference server, then Socket.IO.
    pub(crate) servers: Vec<ServerLoad>,
    /// The fan-out on PostgreSQL and on three nodes of each server (one machine:
    /// what a delivery costs there, not added capacity).
    pub(crate) scale_out: Vec<DeploymentLoad>,
    /// What PostgreSQL executed for them.
    pub(crate) store_profile: StoreProfile,
}

/// Nodes of each cluster row.
const CLUSTER_NODES: usize = 3;

/// The scale-out rows: Relaywire on PostgreSQL (one node, then three over Redis) and
/// Socket.IO on three nodes over its Redis adapter, on a private PostgreSQL and
/// Redis, in turns as the single-node rows are.
/// Reads `pg_stat_statements` after the scale-out runs.
fn store_profile(
    postgres: &relaywire_tests::services::Postgres,
    messages: u64,
) -> Result<StoreProfile> {
    let rows = postgres.query(
        "postgres",
        "SELECT calls, total_exec_time, left(regexp_replace(query, '\\s+', ' ', 'g'), 100)
         FROM pg_stat_statements ORDER BY total_exec_time DESC",
    )?;
    let mut profile = StoreProfile {
        messages,
        ..StoreProfile::default()
    };
    for line in rows.lines() {
        let mut fields = line.splitn(3, '|');
        let (Some(calls), Some(total), Some(statement)) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let calls: u64 = calls.parse().unwrap_or(0);
        let total_ms: f64 = total.parse().unwrap_or(0.0);
        profile.calls += calls;
        profile.total_ms += total_ms;
        if profile.top.len() < 8 {
            profile.top.push(StatementTime {
                statement: statement.to_owned(),
                calls,
                total_ms,
            });
        }
    }
    Ok(profile)
}

async fn scale_out(
    server_binary: &Path,
    js_dir: &Path,
    settings: &Settings,
) -> Result<(Vec<DeploymentLoad>, StoreProfile)> {
    // Statement statistics are the store's profile: what it executed, and how long.
    let postgres = relaywire_tests::services::Postgres::start_with(&[
        "shared_preload_libraries=pg_stat_statements",
    ])?;
    postgres.query("postgres", "CREATE EXTENSION pg_stat_statements")?;
    let redis = relaywire_tests::services::Redis::start()?;
    let max = settings.receivers * 2 + DESCRIPTOR_HEADROOM as usize;
    let single = postgres.create_database("bench_single")?;
    let shared = postgres.create_database("bench_cluster")?;
    let redis_url = redis.url();
    let mut deployments: Vec<(&'static str, Vec<Server>)> = Vec::new();
    deployments.push((
        "Relaywire, PostgreSQL, 1 node",
        vec![Server::relaywire_on(server_binary, max, &[("DATABASE_URL", &single)]).await?],
    ));
    let mut relaywire_nodes = Vec::new();
    for _ in 0..CLUSTER_NODES {
        relaywire_nodes.push(
            Server::relaywire_on(
                server_binary,
                max,
                &[("DATABASE_URL", &shared), ("REDIS_URL", &redis_url)],
            )
            .await?,
        );
    }
    deployments.push(("Relaywire, PostgreSQL + Redis, 3 nodes", relaywire_nodes));
    let mut socketio_nodes = Vec::new();
    for _ in 0..CLUSTER_NODES {
        socketio_nodes.push(Server::socketio(js_dir, Some(&redis_url)).await?);
    }
    deployments.push(("Socket.IO 4, Redis adapter, 3 nodes", socketio_nodes));

    // Only the runs count, not the nodes' start-up and migrations.
    postgres.query("postgres", "SELECT pg_stat_statements_reset()")?;
    let mut runs: Vec<Vec<Fanout>> = vec![Vec::new(); deployments.len()];
    for run in 1..=settings.runs {
        for ((name, nodes), results) in deployments.iter().zip(&mut runs) {
            // Chat ids apart from the single-node rows' (the same store is not shared,
            // but the numbering of runs is).
            let result = fanout::run(
                nodes,
                100 + run,
                settings.receivers,
                settings.messages,
                settings.window,
            )
            .await?;
            eprintln!(
                "bench: {name}: fan-out run {run}: {:.0} deliveries/s, p50 {:.2} ms, p99 {:.2} ms",
                result.per_second, result.p50_ms, result.p99_ms
            );
            results.push(result);
        }
    }
    // The PostgreSQL rows' messages: two Relaywire deployments, every run.
    let messages = (2 * settings.runs * settings.messages) as u64;
    let profile = store_profile(&postgres, messages)?;
    let loads = deployments
        .iter()
        .zip(runs)
        .map(|((name, nodes), fanout)| {
            let of = |f: &dyn Fn(&Fanout) -> f64| {
                median(&fanout.iter().map(f).collect::<Vec<_>>()).unwrap_or(f64::NAN)
            };
            DeploymentLoad {
                deployment: name,
                nodes: nodes.len(),
                per_second: of(&|r| r.per_second),
                p50_ms: of(&|r| r.p50_ms),
                p99_ms: of(&|r| r.p99_ms),
                cpu_ms_per_1000: of(&|r| {
                    r.server_cpu.iter().map(|t| t.seconds).sum::<f64>() * 1e6
                        / r.delivered.max(1) as f64
                }),
                fanout,
            }
        })
        .collect();
    Ok((loads, profile))
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
    let processes = [
        Server::relaywire(server_binary, max_connections).await?,
        Server::socketio(js_dir, None).await?,
    ];
    let mut idle = Vec::new();
    for server in &processes {
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
    let mut fanouts: Vec<Vec<Fanout>> = vec![Vec::new(); processes.len()];
    for run in 1..=settings.runs {
        for (server, results) in processes.iter().zip(&mut fanouts) {
            let result = fanout::run(
                std::slice::from_ref(server),
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
    let servers = processes
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
    drop(processes);
    let (scale_out, store_profile) = scale_out(server_binary, js_dir, &settings).await?;
    Ok(LoadReport {
        settings,
        servers,
        scale_out,
        store_profile,
    })
}
