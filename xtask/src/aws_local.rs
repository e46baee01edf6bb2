//! The serverless deployment, locally: moto's DynamoDB and the API Gateway simulator
//! with the real Lambda binaries behind it, serving an app's files on one origin. For
//! `cargo xtask demo --aws-local` and the `aws-e2e` check.

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use crate::Result;
use crate::cmd::{Cmd, step};
use crate::services::Moto;
use crate::tools::{project_root, target_dir};

/// A running local deployment; dropping it stops everything.
pub(crate) struct AwsLocal {
    simulator: Child,
    _stdin: Option<ChildStdin>,
    _moto: Moto,
    port: u16,
}

impl AwsLocal {
    /// Builds the functions and the simulator, starts moto and the simulator on `port`
    /// with the app's files from `static_dir`, and waits until the site answers.
    /// `env` reaches the functions.
    pub(crate) fn start(port: u16, static_dir: &Path, env: &[(&str, String)]) -> Result<Self> {
        step("building the Lambda functions and the API Gateway simulator");
        Cmd::new("cargo", &project_root())
            .args(["build", "--quiet", "-p", "relaywire-aws", "--bins"])
            .run()?;
        step("starting moto's DynamoDB and the simulator");
        let moto = Moto::start()?;
        let binary = target_dir().join("debug/gateway-simulator");
        let mut command = Command::new(&binary);
        command
            .stdin(Stdio::piped())
            .env("EXIT_ON_STDIN_CLOSE", "true")
            .env("AWS_ENDPOINT_URL_DYNAMODB", moto.url())
            .env("SIMULATOR_PORT", port.to_string())
            .env("SIMULATOR_STATIC_DIR", static_dir)
            .env("RELAYWIRE_APP", "chat-demo")
            .env("DEV_LOGIN", "true")
            .env("JWT_SECRET", crate::demo::random_secret()?)
            .env("LOG_LEVEL", "warn");
        for (key, value) in env {
            command.env(key, value);
        }
        let mut simulator = command
            .spawn()
            .map_err(|err| format!("cannot start {}: {err}", binary.display()))?;
        let stdin = simulator.stdin.take();
        let local = Self {
            simulator,
            _stdin: stdin,
            _moto: moto,
            port,
        };
        local.wait_until_up()?;
        Ok(local)
    }

    fn wait_until_up(&self) -> Result {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(format!(
            "the simulator did not listen on port {} within a minute",
            self.port
        ))
    }

    /// The site: the app, its HTTP API, and the WebSocket API at `/ws`.
    pub(crate) fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// What takes the gateway down and back (`/kill`, `/start`, `/cut`).
    pub(crate) fn control_url(&self) -> String {
        format!("{}/_simulator", self.url())
    }

    /// Waits until the simulator stops (Ctrl-C).
    pub(crate) fn wait(mut self) -> Result {
        let status = self.simulator.wait().map_err(|err| err.to_string())?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("the simulator stopped: {status}"))
        }
    }
}

impl Drop for AwsLocal {
    fn drop(&mut self) {
        // Its stdin closes with it, which stops it; kill it if it lingers.
        self._stdin.take();
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.simulator.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.simulator.kill();
        let _ = self.simulator.wait();
    }
}
