//! The Lambda Runtime API, for one function: the function's processes poll it for
//! invocations and post their results, exactly as on Lambda
//! (`/2018-06-01/runtime/invocation/next`, `.../{id}/response`, `.../{id}/error`).

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::process::{Child, Command};
use tokio::sync::{Mutex, mpsc, oneshot};

/// Why an invocation gave no result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvokeError {
    /// The function reported an error (or crashed).
    #[error("the function failed: {0}")]
    Failed(String),
    /// It did not answer within the integration timeout.
    #[error("the function timed out")]
    TimedOut,
    /// The simulator failed it on purpose (fault injection).
    #[error("the invocation was failed on purpose")]
    Injected,
}

type Waiting = oneshot::Sender<Result<Value, InvokeError>>;

struct Queue {
    pending: mpsc::Sender<(String, Value)>,
    next: Mutex<mpsc::Receiver<(String, Value)>>,
    waiting: std::sync::Mutex<HashMap<String, Waiting>>,
    serial: AtomicU64,
    name: String,
    timeout: Duration,
}

/// One function: its Runtime API and its processes.
pub(crate) struct Function {
    queue: Arc<Queue>,
    /// Its processes: they stop with it (`kill_on_drop`), or at [`Function::stop`].
    children: std::sync::Mutex<Vec<Child>>,
    /// Stops its Runtime API.
    stopping: tokio::sync::watch::Sender<bool>,
}

impl std::fmt::Debug for Function {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Function")
            .field("name", &self.queue.name)
            .finish_non_exhaustive()
    }
}

async fn next(State(queue): State<Arc<Queue>>) -> Response {
    let Some((id, event)) = queue.next.lock().await.recv().await else {
        return StatusCode::GONE.into_response();
    };
    let deadline = SystemTime::now() + queue.timeout;
    let deadline_ms = deadline
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis());
    let mut headers = HeaderMap::new();
    let mut set = |name: &'static str, value: String| {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    };
    set("lambda-runtime-aws-request-id", id);
    set("lambda-runtime-deadline-ms", deadline_ms.to_string());
    set(
        "lambda-runtime-invoked-function-arn",
        format!(
            "arn:aws:lambda:us-east-1:000000000000:function:{}",
            queue.name
        ),
    );
    set(
        "lambda-runtime-trace-id",
        "Root=1-00000000-000000000000000000000000".to_owned(),
    );
    (headers, axum::Json(event)).into_response()
}

fn finish(queue: &Queue, id: &str, result: Result<Value, InvokeError>) {
    let waiting = queue
        .waiting
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .remove(id);
    if let Some(waiting) = waiting {
        let _ = waiting.send(result);
    }
}

async fn respond(
    State(queue): State<Arc<Queue>>,
    Path(id): Path<String>,
    body: Bytes,
) -> StatusCode {
    let value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    finish(&queue, &id, Ok(value));
    StatusCode::ACCEPTED
}

async fn fail(State(queue): State<Arc<Queue>>, Path(id): Path<String>, body: Bytes) -> StatusCode {
    let message = String::from_utf8_lossy(&body).into_owned();
    finish(&queue, &id, Err(InvokeError::Failed(message)));
    StatusCode::ACCEPTED
}

async fn init_error(State(queue): State<Arc<Queue>>, body: Bytes) -> StatusCode {
    tracing::error!(function = %queue.name, error = %String::from_utf8_lossy(&body), "a function failed to start");
    StatusCode::ACCEPTED
}

impl Function {
    /// Serves the Runtime API on a free port and starts `instances` processes of
    /// `binary` against it, with `env` (and Lambda's own variables).
    pub(crate) async fn start(
        name: &str,
        binary: &PathBuf,
        env: &[(String, String)],
        instances: usize,
        timeout: Duration,
    ) -> std::io::Result<Self> {
        let (pending, receiver) = mpsc::channel(1024);
        let queue = Arc::new(Queue {
            pending,
            next: Mutex::new(receiver),
            waiting: std::sync::Mutex::new(HashMap::new()),
            serial: AtomicU64::new(0),
            name: name.to_owned(),
            timeout,
        });
        let router = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(respond),
            )
            .route("/2018-06-01/runtime/invocation/{id}/error", post(fail))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(Arc::clone(&queue));
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (stopping, mut stopped) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            let stop = async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            };
            let _ = axum::serve(listener, router)
                .with_graceful_shutdown(stop)
                .await;
        });
        let mut children = Vec::with_capacity(instances);
        for instance in 0..instances {
            let child = Command::new(binary)
                .envs(env.iter().map(|(key, value)| (key, value)))
                .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
                .env("AWS_LAMBDA_FUNCTION_NAME", name)
                .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
                .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
                .env("AWS_LAMBDA_LOG_STREAM_NAME", format!("{name}-{instance}"))
                .stdin(Stdio::null())
                .kill_on_drop(true)
                .spawn()?;
            children.push(child);
        }
        Ok(Self {
            queue,
            children: std::sync::Mutex::new(children),
            stopping,
        })
    }

    /// Invokes the function with `event` and waits for its result.
    pub(crate) async fn invoke(&self, event: Value) -> Result<Value, InvokeError> {
        let id = format!(
            "{}-{}",
            self.queue.name,
            self.queue.serial.fetch_add(1, Ordering::Relaxed)
        );
        let (tx, rx) = oneshot::channel();
        self.queue
            .waiting
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(id.clone(), tx);
        if self.queue.pending.send((id.clone(), event)).await.is_err() {
            return Err(InvokeError::Failed("the function is stopped".to_owned()));
        }
        match tokio::time::timeout(self.queue.timeout, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(InvokeError::Failed("no result".to_owned())),
            Err(_) => {
                self.queue
                    .waiting
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .remove(&id);
                Err(InvokeError::TimedOut)
            }
        }
    }

    /// Kills its processes, then stops its Runtime API (in that order, so no process
    /// sees its API vanish and reports it).
    pub(crate) fn stop(&self) {
        let mut children = self
            .children
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for child in children.iter_mut() {
            let _ = child.start_kill();
        }
        self.stopping.send_replace(true);
    }
}
