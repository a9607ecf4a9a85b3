//! Spawns the real `ai-gateway` binary on a free port, with a clean environment, and talks HTTP
//! to it. Every log line it prints is kept, so tests can search them.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use super::fake_anthropic::{FAKE_API_KEY, FakeAnthropic};
use super::redis::RedisServer;

pub struct Gateway {
    pub url: String,
    pub client: reqwest::Client,
    child: Child,
    logs: Arc<Mutex<Vec<String>>>,
}

#[derive(Default, Clone)]
pub struct GatewayBuilder {
    env: Vec<(String, String)>,
}

/// A response, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("not JSON ({e}): status {} body {}", self.status, self.text))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

impl GatewayBuilder {
    pub fn env(mut self, name: &str, value: impl Into<String>) -> Self {
        self.env.retain(|(k, _)| k != name);
        self.env.push((name.to_string(), value.into()));
        self
    }

    pub fn redis(self, redis: &RedisServer) -> Self {
        let b = self.env("REDIS_URL", redis.url());
        match redis.ca_file() {
            Some(ca) => b.env("REDIS_CA_FILE", ca.display().to_string()),
            None => b,
        }
    }

    pub fn upstream(self, fake: &FakeAnthropic) -> Self {
        self.env("ANTHROPIC_BASE_URL", fake.url())
            .env("ANTHROPIC_API_KEY", FAKE_API_KEY)
    }

    /// The binary with a clean environment (PATH, BIND, JSON logs) plus this builder's variables.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ai-gateway"));
        // Nothing from the machine's environment (a real REDIS_URL or key) leaks in.
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("BIND", "127.0.0.1:0")
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", "info");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd
    }

    /// Starts the gateway and waits for its "listening" line.
    pub async fn spawn(self) -> Gateway {
        let mut child = self.command().spawn().expect("the gateway binary starts");
        let (addr_tx, addr_rx) = tokio::sync::oneshot::channel::<String>();
        let mut addr_tx = Some(addr_tx);
        let logs = keep_output(&mut child, move |line| {
            if let Ok(v) = serde_json::from_str::<Value>(line)
                && v["message"] == "listening"
                && let (Some(tx), Some(addr)) = (addr_tx.take(), v["addr"].as_str())
            {
                let _ = tx.send(addr.to_string());
            }
        });
        let addr = match tokio::time::timeout(Duration::from_secs(15), addr_rx).await {
            Ok(Ok(addr)) => addr,
            _ => {
                let _ = child.kill().await;
                panic!(
                    "the gateway did not start; its output:\n{}",
                    logs.lock().unwrap().join("\n")
                );
            }
        };
        Gateway {
            url: format!("http://{addr}"),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap(),
            child,
            logs,
        }
    }

    /// Runs the binary with `args` to its end: exit code, stdout, stderr.
    pub async fn run(self, args: &[&str]) -> (i32, String, String) {
        let output =
            tokio::time::timeout(Duration::from_secs(30), self.command().args(args).output())
                .await
                .expect("the binary exits by itself")
                .expect("the binary runs");
        (
            output.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    /// Runs the binary expecting it to refuse to start; returns its exit code and output.
    pub async fn spawn_expecting_failure(self) -> (i32, String) {
        let (code, stdout, stderr) = self.run(&[]).await;
        (code, format!("{stdout}{stderr}"))
    }
}

/// Keeps every line `child` prints, stdout and stderr; `watch` sees each stdout line as it comes.
pub fn keep_output(
    child: &mut Child,
    mut watch: impl FnMut(&str) + Send + 'static,
) -> Arc<Mutex<Vec<String>>> {
    let logs = Arc::new(Mutex::new(Vec::new()));
    let stdout = child.stdout.take().expect("stdout is piped");
    let stderr = child.stderr.take().expect("stderr is piped");
    let out_logs = logs.clone();
    tokio::spawn(async move {
        let mut lines = BufReader::new(stdout).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            watch(&line);
            out_logs.lock().unwrap().push(line);
        }
    });
    let err_logs = logs.clone();
    tokio::spawn(async move {
        let mut lines = BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            err_logs.lock().unwrap().push(line);
        }
    });
    logs
}

impl Gateway {
    pub fn builder() -> GatewayBuilder {
        GatewayBuilder::default()
    }

    pub async fn post(&self, path: &str, body: &Value) -> Reply {
        self.send(self.client.post(format!("{}{path}", self.url)).json(body))
            .await
    }

    pub async fn post_raw(&self, path: &str, body: impl Into<reqwest::Body>) -> Reply {
        self.send(
            self.client
                .post(format!("{}{path}", self.url))
                .header("content-type", "application/json")
                .body(body),
        )
        .await
    }

    pub async fn generate(&self, body: Value) -> Reply {
        self.post("/v1/generate", &body).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(self.client.get(format!("{}{path}", self.url)))
            .await
    }

    /// A GET with a gateway key in `x-api-key`.
    pub async fn get_with_key(&self, path: &str, key: &str) -> Reply {
        self.send(
            self.client
                .get(format!("{}{path}", self.url))
                .header("x-api-key", key),
        )
        .await
    }

    pub async fn send(&self, request: reqwest::RequestBuilder) -> Reply {
        let response = request.send().await.expect("the gateway answers");
        Reply {
            status: response.status().as_u16(),
            headers: response.headers().clone(),
            text: response.text().await.unwrap_or_default(),
        }
    }

    /// Everything the process printed so far.
    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }

    /// The JSON request-log lines (one per request).
    pub fn request_logs(&self) -> Vec<Value> {
        self.logs
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["message"] == "request")
            .collect()
    }

    pub async fn stop(mut self) -> String {
        let _ = self.child.kill().await;
        self.logs()
    }
}
