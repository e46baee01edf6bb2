//! Building the server for an app, serving it, and shutting it down gracefully.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::accept::Bounds;
use crate::app::App;
use crate::cluster::Joining;
use crate::config::{Config, Database};
use crate::connection::Served;
use crate::relay::Relay;
use crate::store::postgres::PostgresStore;
use crate::store::sqlite::{Location, SqliteStore, StoreThread};
use crate::store::{Store, StoreError};
use crate::time::rfc3339;

/// How long shutdown waits for connections to close.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Why the server could not start or stopped badly.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The store could not be opened, or the app's start failed on it.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The address could not be bound, or serving failed.
    #[error("network: {0}")]
    Io(#[from] std::io::Error),
    /// Something needed at start-up failed.
    #[error("start: {0}")]
    Start(String),
    /// The server task ended abnormally.
    #[error("server task failed: {0}")]
    Task(String),
}

/// A server that is accepting connections.
#[derive(Debug)]
pub struct RunningServer {
    addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<Result<(), ServerError>>,
}

impl RunningServer {
    /// The address it listens on (useful with port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, closes every socket with 1001, waits for connections to end
    /// and for the store to write everything, then returns.
    pub async fn shutdown(self) -> Result<(), ServerError> {
        self.shutdown.send_replace(true);
        self.wait().await
    }

    /// Waits until the server stops (after [`RunningServer::shutdown`] or a failure).
    pub async fn wait(self) -> Result<(), ServerError> {
        self.task
            .await
            .map_err(|err| ServerError::Task(err.to_string()))?
    }

    /// A handle that starts the shutdown from elsewhere (a signal handler).
    pub fn shutdown_trigger(&self) -> watch::Sender<bool> {
        self.shutdown.clone()
    }
}

/// Opens the store (and joins the cluster, with `REDIS_URL`), runs the app's start,
/// binds the address and starts serving.
pub async fn start<A: App>(config: Config, app: A) -> Result<RunningServer, ServerError> {
    let (store, store_thread): (Arc<dyn Store>, Option<StoreThread>) = match &config.database {
        Database::Memory => {
            let (store, thread) = SqliteStore::open(&Location::Memory)?;
            (Arc::new(store), Some(thread))
        }
        Database::File(path) => {
            let (store, thread) = SqliteStore::open(&Location::File(path.clone()))?;
            (Arc::new(store), Some(thread))
        }
        Database::Postgres(url) => (Arc::new(PostgresStore::connect(url).await?), None),
    };
    let joining = match &config.cluster {
        Some(cluster) => Some(
            Joining::connect(cluster)
                .await
                .map_err(|err| ServerError::Start(err.to_string()))?,
        ),
        None => None,
    };
    let listen = config.listen;
    let (relay, shutdown) = Relay::<A::Protocol>::new(config, store, joining);
    app.start(&relay).await?;
    let listener = TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let router = router(&relay, Arc::new(app));
    let task = tokio::spawn(serve(relay, listener, router, store_thread));
    Ok(RunningServer {
        addr,
        shutdown,
        task,
    })
}

async fn serve<P: relaywire_protocol::Protocol>(
    relay: Relay<P>,
    listener: TcpListener,
    router: Router,
    store_thread: Option<StoreThread>,
) -> Result<(), ServerError> {
    let forgetting = tokio::spawn(forget_old_answers(relay.clone()));
    let config = relay.config();
    let bounds = Bounds {
        header_read_timeout: config.header_read_timeout,
        max_connections: config.max_connections,
    };
    crate::accept::serve(
        listener,
        router,
        bounds,
        Arc::clone(relay.metrics()),
        relay.shutting_down(),
    )
    .await;
    // Sockets close themselves with 1001 once they see the shutdown.
    let tracker = Arc::clone(relay.tracker());
    let live = tracker.live();
    if !tracker.wait_idle(SHUTDOWN_GRACE).await {
        tracing::warn!(
            live = tracker.live(),
            "connections still open after the grace period"
        );
    }
    tracing::info!(closed = live, "connections closed");
    if let Some(cluster) = relay.cluster() {
        // The other nodes see this node's users go offline now, not when it expires.
        cluster.leave().await;
    }
    let _ = forgetting.await;
    // Every store handle lives in the relay or in finished connections: dropping it lets
    // the store thread finish its queue and close the database.
    drop(relay);
    let Some(store_thread) = store_thread else {
        return Ok(());
    };
    let store_closed = tokio::task::spawn_blocking(move || store_thread.shut_down());
    if tokio::time::timeout(SHUTDOWN_GRACE, store_closed)
        .await
        .is_err()
    {
        // Committed writes are durable already; only the final checkpoint is skipped.
        tracing::warn!("the store did not close in time");
    }
    Ok(())
}

/// Forgets the ids of durable messages older than `DEDUP_WINDOW`, checking every
/// tenth of the window (but no more often than every second, and at least every
/// minute), until shutdown: an id is remembered for the window, and forgotten within
/// one check after it.
async fn forget_old_answers<P: relaywire_protocol::Protocol>(relay: Relay<P>) {
    let window = relay.config().dedup_window;
    let every = (window / 10).clamp(Duration::from_secs(1), Duration::from_secs(60));
    let mut ticks = tokio::time::interval(every);
    let mut shutting_down = relay.shutting_down();
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = shutting_down.wait_for(|stopping| *stopping) => return,
        }
        let Some(before) = std::time::SystemTime::now().checked_sub(window) else {
            continue;
        };
        match relay.store().forget_answers(rfc3339(before)).await {
            Ok(0) => {}
            Ok(forgotten) => tracing::debug!(forgotten, "forgot the ids of old durable messages"),
            Err(err) => tracing::warn!(error = %err, "forgetting old message ids failed"),
        }
    }
}

/// The library's routes and the app's, over `relay`.
pub(crate) fn router<A: App>(relay: &Relay<A::Protocol>, app: Arc<A>) -> Router {
    let config = relay.config().clone();
    let app_routes = app.routes().with_state(relay.clone());
    let served = Served {
        relay: relay.clone(),
        app,
    };
    let mut router = crate::http::routes::<A>(config.test_hooks)
        .with_state(served)
        .merge(app_routes)
        .layer(relay.origins().cors());
    if let Some(dir) = &config.static_dir {
        router = router.fallback_service(crate::statics::service(dir));
    }
    router
}
