//! `relaywire-chat-server`: the reference chat server, configured by environment
//! variables (see the README). Exits 0 after a graceful shutdown on SIGTERM or Ctrl-C,
//! 2 on bad configuration, 1 when it cannot start.

use std::io::Read as _;
use std::process::ExitCode;

use relaywire_chat_server::{Config, start};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(err) => {
            eprintln!("relaywire-chat-server: configuration error: {err}");
            return ExitCode::from(2);
        }
    };
    let filter = match EnvFilter::try_new(&config.log_level) {
        Ok(filter) => filter,
        Err(err) => {
            eprintln!(
                "relaywire-chat-server: configuration error: LOG_LEVEL={:?} is invalid: {err}",
                config.log_level
            );
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_env_filter(filter)
        .init();

    let exit_on_stdin_close =
        std::env::var("EXIT_ON_STDIN_CLOSE").is_ok_and(|v| v == "1" || v == "true");
    let server = match start(config).await {
        Ok(server) => server,
        Err(err) => {
            tracing::error!(error = %err, "cannot start");
            eprintln!("relaywire-chat-server: cannot start: {err}");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(url = %format!("http://{}", server.addr()), "listening");

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

/// Ctrl-C, SIGTERM, or (for supervised test runs) the end of standard input, so that
/// a server started by a test stops when its parent does.
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
