//! What an app's `main` does: read the configuration (exit 2 naming a bad variable),
//! log JSON lines, serve, and shut down gracefully on SIGTERM or Ctrl-C.

use std::io::Read as _;
use std::process::ExitCode;

use tracing_subscriber::EnvFilter;

use crate::app::App;
use crate::config::{Config, ConfigError, Env};

/// Targets that log what clients send (frames, headers) below debug.
const TOKEN_SAFE_CAPS: [&str; 6] = [
    "tungstenite=debug",
    "tokio_tungstenite=debug",
    "axum=debug",
    "hyper=debug",
    "hyper_util=debug",
    "tower_http=debug",
];

/// Runs an app as a server process, configured by environment variables. `make`
/// builds the app from the same variables, so its own settings fail the same way, and
/// may set the app's own defaults on the configuration (a variable the operator set
/// still wins: `make` sees it in the `Env`).
/// Exits 0 after a graceful shutdown, 2 on bad configuration, 1 when it cannot start.
///
/// With `EXIT_ON_STDIN_CLOSE=1`, the end of standard input also stops it, so a server a
/// test started stops when its parent does.
pub fn run<A: App>(
    name: &str,
    make: impl FnOnce(&Env, &mut Config) -> Result<A, ConfigError>,
) -> ExitCode {
    let env = Env::from_process();
    let configured = Config::from(&env).and_then(|mut config| {
        let app = make(&env, &mut config)?;
        Ok((config, app))
    });
    let (config, app) = match configured {
        Ok(configured) => configured,
        Err(err) => {
            eprintln!("{name}: configuration error: {err}");
            return ExitCode::from(2);
        }
    };
    let filter = match EnvFilter::try_new(&config.log_level) {
        Ok(filter) => filter,
        Err(err) => {
            eprintln!(
                "{name}: configuration error: LOG_LEVEL={:?} is invalid: {err}",
                config.log_level
            );
            return ExitCode::from(2);
        }
    };
    let exit_on_stdin_close = match env.flag("EXIT_ON_STDIN_CLOSE") {
        Ok(flag) => flag,
        Err(err) => {
            eprintln!("{name}: configuration error: {err}");
            return ExitCode::from(2);
        }
    };
    // The WebSocket and HTTP libraries log frames (tokens in `auth` messages among
    // them) below debug: whatever LOG_LEVEL says, they stop at debug.
    let filter = TOKEN_SAFE_CAPS
        .iter()
        .fold(filter, |filter, directive| match directive.parse() {
            Ok(directive) => filter.add_directive(directive),
            Err(_) => filter,
        });
    // Logging never blocks the server: lines go through a queue to a writer thread,
    // and are dropped when standard output does not keep up (a closed or full pipe).
    let (writer, _flush_on_exit) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(true)
        .finish(std::io::stdout());
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_env_filter(filter)
        .with_writer(writer)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("{name}: cannot start the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(serve(name, config, app, exit_on_stdin_close))
}

async fn serve<A: App>(name: &str, config: Config, app: A, exit_on_stdin_close: bool) -> ExitCode {
    let server = match crate::start(config.clone(), app).await {
        Ok(server) => server,
        Err(err) => {
            tracing::error!(error = %err, "cannot start");
            eprintln!("{name}: cannot start: {err}");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(url = %format!("http://{}", server.addr()), "listening");
    warn_about_development_switches(&config);
    let trigger = server.shutdown_trigger();
    tokio::spawn(async move {
        stop_signal(exit_on_stdin_close).await;
        tracing::info!("shutting down");
        trigger.send_replace(true);
    });
    match server.wait().await {
        Ok(()) => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        Err(err) => {
            tracing::error!(error = %err, "stopped with an error");
            ExitCode::FAILURE
        }
    }
}

/// Says loudly what a production server must not run with.
fn warn_about_development_switches(config: &Config) {
    let reachable = !config.listen.ip().is_loopback();
    if config.dev_login {
        tracing::warn!(
            reachable_from_the_network = reachable,
            "DEV_LOGIN is on: anyone can sign in as anyone through POST /auth/dev-login"
        );
    }
    if config.test_hooks {
        tracing::warn!("TEST_HOOKS is on: /test/* can mint tokens and pause answers");
    }
}

/// Ctrl-C, SIGTERM, or (for supervised test runs) the end of standard input.
async fn stop_signal(exit_on_stdin_close: bool) {
    let stdin_closed = async {
        if !exit_on_stdin_close {
            return std::future::pending().await;
        }
        let _ = tokio::task::spawn_blocking(|| {
            let mut sink = [0u8; 256];
            while matches!(std::io::stdin().read(&mut sink), Ok(n) if n > 0) {}
        })
        .await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
        _ = stdin_closed => {}
    }
}
