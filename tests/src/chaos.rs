//! A TCP proxy that misbehaves on a seeded random schedule: it cuts connections in the
//! middle of a frame, stalls them (the socket stays open but nothing passes: a
//! half-open connection), and delays what it forwards.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// SplitMix64: a small deterministic generator, so a failing schedule can be replayed
/// from its seed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// `true` with probability `per_mille / 1000`.
    pub fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }
}

/// What the proxy did.
#[derive(Debug, Default)]
pub struct ChaosStats {
    /// Connections accepted.
    pub connections: AtomicU64,
    /// Connections cut in the middle of a chunk.
    pub cuts: AtomicU64,
    /// Connections stalled (half-open) until the client gave up on them.
    pub stalls: AtomicU64,
    /// Chunks held back before forwarding.
    pub delays: AtomicU64,
}

/// How a connection misbehaves, decided when it is accepted.
#[derive(Debug, Clone, Copy)]
enum Fate {
    /// Forward everything, with occasional delays.
    Healthy,
    /// Cut after this many milliseconds, in the middle of whatever passes then.
    Cut(u64),
    /// Stop forwarding after this many milliseconds, keeping the socket open.
    Stall(u64),
}

/// The running proxy.
#[derive(Debug)]
pub struct ChaosProxy {
    addr: SocketAddr,
    chaos: Arc<AtomicBool>,
    stats: Arc<ChaosStats>,
    stop: watch::Sender<bool>,
}

impl ChaosProxy {
    /// Listens on 127.0.0.1 and forwards to `upstream`, misbehaving while chaos is on.
    pub async fn start(upstream: SocketAddr, seed: u64) -> std::io::Result<ChaosProxy> {
        Self::balancing(vec![upstream], seed).await
    }

    /// Like [`ChaosProxy::start`], spreading connections over `upstreams` in turn as a
    /// load balancer does; a connection whose upstream is down goes to the next one.
    pub async fn balancing(upstreams: Vec<SocketAddr>, seed: u64) -> std::io::Result<ChaosProxy> {
        let upstreams: Arc<[SocketAddr]> = Arc::from(upstreams);
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let chaos = Arc::new(AtomicBool::new(true));
        let stats = Arc::new(ChaosStats::default());
        let (stop, stopped) = watch::channel(false);
        let (accept_chaos, accept_stats) = (Arc::clone(&chaos), Arc::clone(&stats));
        tokio::spawn(async move {
            let mut rng = Rng::new(seed);
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                accept_stats.connections.fetch_add(1, Ordering::Relaxed);
                let fate = if accept_chaos.load(Ordering::Relaxed) {
                    match rng.below(10) {
                        0..=3 => Fate::Cut(100 + rng.below(1_500)),
                        4 => Fate::Stall(300 + rng.below(1_500)),
                        _ => Fate::Healthy,
                    }
                } else {
                    Fate::Healthy
                };
                let connection_seed = rng.next_u64();
                let first =
                    usize::try_from(accept_stats.connections.load(Ordering::Relaxed)).unwrap_or(0);
                tokio::spawn(relay(
                    client,
                    (Arc::clone(&upstreams), first),
                    fate,
                    connection_seed,
                    Arc::clone(&accept_chaos),
                    Arc::clone(&accept_stats),
                    stopped.clone(),
                ));
            }
        });
        Ok(ChaosProxy {
            addr,
            chaos,
            stats,
            stop,
        })
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Turns misbehaviour on or off for new connections and chunks.
    pub fn set_chaos(&self, on: bool) {
        self.chaos.store(on, Ordering::Relaxed);
    }

    /// What the proxy did so far.
    pub fn stats(&self) -> &ChaosStats {
        &self.stats
    }

    /// Cuts every open connection (as a network outage would).
    pub fn cut_all(&self) {
        self.stop.send_replace(true);
        self.stop.send_replace(false);
    }
}

async fn relay(
    client: TcpStream,
    (upstreams, first): (Arc<[SocketAddr]>, usize),
    fate: Fate,
    seed: u64,
    chaos: Arc<AtomicBool>,
    stats: Arc<ChaosStats>,
    mut stop: watch::Receiver<bool>,
) {
    // Only cuts ordered after this connection began concern it.
    stop.borrow_and_update();
    let mut server = None;
    for offset in 0..upstreams.len() {
        let upstream = upstreams[(first + offset) % upstreams.len()];
        if let Ok(connected) = TcpStream::connect(upstream).await {
            server = Some(connected);
            break;
        }
    }
    let Some(server) = server else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let started = tokio::time::Instant::now();
    let deadline = match fate {
        Fate::Healthy => None,
        Fate::Cut(ms) | Fate::Stall(ms) => Some(started + Duration::from_millis(ms)),
    };
    let up = pump(
        client_read,
        server_write,
        deadline,
        seed,
        Arc::clone(&chaos),
        Arc::clone(&stats),
    );
    let down = pump(
        server_read,
        client_write,
        deadline,
        seed ^ 1,
        chaos,
        Arc::clone(&stats),
    );
    let ended = async {
        tokio::select! {
            _ = up => {}
            _ = down => {}
        }
    };
    tokio::select! {
        _ = ended => {}
        _ = stop.changed() => {}
        _ = sleep_until(deadline) => {
            match fate {
                Fate::Stall(_) => {
                    stats.stalls.fetch_add(1, Ordering::Relaxed);
                    // Half-open: hold both sockets, pass nothing, until the peers give up.
                    tokio::time::sleep(Duration::from_secs(20)).await;
                }
                _ => {
                    stats.cuts.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
    // Dropping both halves closes the connection abruptly, whatever was in flight.
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Copies one direction in chunks, now and then delaying one, and when the deadline
/// comes forwards only part of the chunk in hand: a cut in the middle of a frame.
async fn pump(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    deadline: Option<tokio::time::Instant>,
    seed: u64,
    chaos: Arc<AtomicBool>,
    stats: Arc<ChaosStats>,
) {
    let mut rng = Rng::new(seed);
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        let read = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(read) => read,
        };
        let chunk = &buffer[..read];
        if chaos.load(Ordering::Relaxed) && rng.chance(80) {
            stats.delays.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(rng.below(80))).await;
        }
        let past_deadline = deadline.is_some_and(|d| tokio::time::Instant::now() >= d);
        if past_deadline && chunk.len() > 1 {
            let part = 1 + rng.below(chunk.len() as u64 - 1) as usize;
            let _ = to.write_all(&chunk[..part]).await;
            std::future::pending::<()>().await;
        }
        if to.write_all(chunk).await.is_err() {
            return;
        }
    }
}
