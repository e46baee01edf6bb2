//! Building the application, serving it, and shutting it down gracefully.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderValue, Method, header};
use relaywire_chat::http::CreateChat;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::services::{ServeDir, ServeFile};

use crate::api;
use crate::app::App;
use crate::config::Config;
use crate::store::{Store, StoreError, StoreThread, queries};
use crate::ws;

/// How long shutdown waits for connections to close.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Why the server could not start or stopped badly.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The store could not be opened or seeded.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The address could not be bound, or serving failed.
    #[error("network: {0}")]
    Io(#[from] std::io::Error),
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

/// Opens the store, binds the address and starts serving.
pub async fn start(config: Config) -> Result<RunningServer, ServerError> {
    let (store, store_thread) = Store::open(&config.database)?;
    if config.seed_demo {
        seed_demo(&store).await?;
    }
    let (app, shutdown) = App::new(config, store);
    let listener = TcpListener::bind(app.config.listen).await?;
    let addr = listener.local_addr()?;
    let router = router(&app);
    let task = tokio::spawn(serve(app, listener, router, store_thread));
    Ok(RunningServer {
        addr,
        shutdown,
        task,
    })
}

async fn serve(
    app: App,
    listener: TcpListener,
    router: Router,
    store_thread: StoreThread,
) -> Result<(), ServerError> {
    let mut stop = app.shutting_down.clone();
    let served = axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            let _ = stop.wait_for(|stopping| *stopping).await;
        })
        .await;
    // Sockets close themselves with 1001 once they see the shutdown.
    let live = app.tracker.live();
    if !app.tracker.wait_idle(SHUTDOWN_GRACE).await {
        tracing::warn!(
            live = app.tracker.live(),
            "connections still open after the grace period"
        );
    }
    tracing::info!(closed = live, "connections closed");
    // Every store handle lives in `app` or in finished connections: dropping it lets the
    // store thread finish its queue and close the database.
    drop(app);
    let store_closed = tokio::task::spawn_blocking(move || store_thread.shut_down());
    if tokio::time::timeout(SHUTDOWN_GRACE, store_closed)
        .await
        .is_err()
    {
        // Committed writes are durable already; only the final checkpoint is skipped.
        tracing::warn!("the store did not close in time");
    }
    served?;
    Ok(())
}

fn cors(app: &App) -> CorsLayer {
    let origins = &app.config.allowed_origins;
    let allow_origin = if origins.iter().any(|origin| origin == "*") {
        AllowOrigin::mirror_request()
    } else {
        AllowOrigin::list(
            origins
                .iter()
                .filter_map(|origin| HeaderValue::from_str(origin).ok()),
        )
    };
    CorsLayer::new()
        .allow_origin(allow_origin)
        .allow_credentials(true)
        .allow_methods([Method::GET, Method::POST, Method::DELETE])
        .allow_headers([header::CONTENT_TYPE, header::AUTHORIZATION])
}

fn router(app: &App) -> Router {
    let mut router = api::routes(app)
        .route("/ws", axum::routing::get(ws::upgrade))
        .layer(cors(app));
    if let Some(dir) = &app.config.static_dir {
        // A single-page app: unknown paths get index.html.
        let index = ServeFile::new(dir.join("index.html"));
        router = router.fallback_service(ServeDir::new(dir).fallback(index));
    }
    router.with_state(app.clone())
}

/// Creates the demo's chats when they do not exist yet.
async fn seed_demo(store: &Store) -> Result<(), StoreError> {
    store
        .run(|db| {
            let chats = [
                ("general", "General", true, &["alice", "bob"][..]),
                ("random", "Random", true, &[][..]),
                ("design", "Design review", false, &["alice", "bob"][..]),
            ];
            for (id, title, open, participants) in chats {
                if queries::chat(db, id).is_ok() {
                    continue;
                }
                queries::create_chat(
                    db,
                    &CreateChat {
                        id: Some(id.to_owned()),
                        title: title.to_owned(),
                        open: Some(open),
                        participant_ids: Some(participants.iter().map(|p| p.to_string()).collect()),
                    },
                )?;
            }
            Ok(())
        })
        .await
}
