//! The local API Gateway with Relaywire's Lambda functions behind it, for development
//! (`cargo xtask demo --aws-local` runs it): the WebSocket API at `/ws` and the HTTP
//! API on one local origin, with the app's files, against a DynamoDB emulator.
//!
//! `AWS_ENDPOINT_URL_DYNAMODB` names the emulator (required); `SIMULATOR_PORT` the
//! port (8080), `SIMULATOR_STATIC_DIR` the app's files; `RELAYWIRE_TABLE` and
//! `CONNECTIONS_TABLE` the tables (`relaywire`, `connections`: created when missing).
//! Every other variable reaches the functions (`JWT_SECRET`, `DEV_LOGIN`,
//! `RELAYWIRE_APP`...). It stops on Ctrl-C, or when its stdin closes with
//! `EXIT_ON_STDIN_CLOSE=true`.

use std::time::Duration;

use relaywire_aws::simulator::{Functions, Limits, Simulator, Site};
use relaywire_aws::{DynamoConnections, DynamoStore};
use relaywire_server::store::StoreError;

fn variable(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.is_empty())
}

/// Creates a table unless it exists.
fn created(result: Result<(), StoreError>) -> Result<(), String> {
    match result {
        Ok(()) => Ok(()),
        Err(err) if err.to_string().contains("ResourceInUse") => Ok(()),
        Err(err) => Err(err.to_string()),
    }
}

/// Bad settings exit 2, naming the variable; anything else that fails, 1.
#[tokio::main]
async fn main() -> std::process::ExitCode {
    let settings = variable("AWS_ENDPOINT_URL_DYNAMODB")
        .ok_or("AWS_ENDPOINT_URL_DYNAMODB is not set: the DynamoDB emulator's URL".to_owned())
        .and_then(|endpoint| match variable("SIMULATOR_PORT") {
            None => Ok((endpoint, 8080)),
            Some(port) => port
                .parse::<u16>()
                .map(|port| (endpoint, port))
                .map_err(|_| format!("SIMULATOR_PORT is not a port number: {port}")),
        });
    let (endpoint, port) = match settings {
        Ok(settings) => settings,
        Err(err) => {
            eprintln!("gateway-simulator: {err}");
            return std::process::ExitCode::from(2);
        }
    };
    match run(&endpoint, port).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("gateway-simulator: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(endpoint: &str, port: u16) -> Result<(), String> {
    let table = variable("RELAYWIRE_TABLE").unwrap_or_else(|| "relaywire".to_owned());
    let connections = variable("CONNECTIONS_TABLE").unwrap_or_else(|| "connections".to_owned());
    let client = relaywire_aws::local_client(endpoint);
    created(
        DynamoStore::new(client.clone(), &table)
            .create_table()
            .await,
    )?;
    created(
        DynamoConnections::new(client, &connections)
            .create_table()
            .await,
    )?;

    let binaries = std::env::current_exe()
        .map_err(|err| err.to_string())?
        .parent()
        .ok_or("the simulator's folder")?
        .to_path_buf();
    let mut env: Vec<(String, String)> = std::env::vars().collect();
    for (key, value) in [
        ("RELAYWIRE_TABLE", table.as_str()),
        ("CONNECTIONS_TABLE", connections.as_str()),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "local"),
        ("AWS_SECRET_ACCESS_KEY", "local"),
    ] {
        if variable(key).is_none() {
            env.push((key.to_owned(), value.to_owned()));
        }
    }
    let functions = Functions {
        websocket: binaries.join("websocket"),
        authorizer: Some(binaries.join("authorizer")),
        http: Some(binaries.join("http-api")),
        instances: 2,
        env,
    };
    let site = Site {
        static_dir: variable("SIMULATOR_STATIC_DIR").map(Into::into),
        port,
    };
    let simulator = Simulator::start_with_site("local", Limits::default(), functions, Some(site))
        .await
        .map_err(|err| format!("the simulator did not start: {err}"))?;
    let site = simulator.http_url().unwrap_or_default();
    println!("simulator: the app and its HTTP API at {site}, the WebSocket API at {site}/ws");
    println!(
        "simulator: the WebSocket API's stage at {}",
        simulator.websocket_url()
    );
    println!(
        "simulator: the Management API at {}",
        simulator.management_endpoint()
    );

    let stdin_closes = variable("EXIT_ON_STDIN_CLOSE").is_some_and(|value| value == "true");
    let stdin_closed = async {
        if !stdin_closes {
            return std::future::pending::<()>().await;
        }
        let _ = tokio::task::spawn_blocking(|| {
            let mut sink = Vec::new();
            let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
        })
        .await;
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = stdin_closed => {}
    }
    drop(simulator);
    // The functions are killed with it; give them a moment.
    tokio::time::sleep(Duration::from_millis(100)).await;
    Ok(())
}
