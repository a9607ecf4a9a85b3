//! Cold start: exec the release binary many times, with a private Redis already holding the
//! answer, and time exec → the first answered hit. Also peak and idle RSS.
//!
//! * local server: exec → the "listening" log line → one `POST /v1/generate` → 200 `HIT`.
//! * Lambda: the same binary speaking the Lambda Runtime API to a fake runtime on loopback:
//!   exec → first `GET …/invocation/next` (what Lambda bills as Init) → the response of a hit.
//!   This is what the gateway adds on top of the Lambda runtime's own start.
//! * Lambda, warm: 2 000 hits invoked one after another, to compare a current-thread runtime
//!   (the default on Lambda) with a multi-thread one (`WORKER_THREADS=2`).
//!
//! `cargo bench --bench cold_start` (`COLD_START_RUNS`, default 50; `GATEWAY_BIN` to time
//! another build of the binary).

#[path = "support/mod.rs"]
mod support;

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr};
use std::process::Stdio;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::{LocalGateway, median, percentile};

const WARM_INVOCATIONS: usize = 2_000;
const WARM_REPEATS: usize = 3;

fn runs() -> usize {
    std::env::var("COLD_START_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50)
}

struct ColdRun {
    to_ready_ms: f64,
    to_hit_ms: f64,
    peak_kb: u64,
    idle_kb: u64,
}

fn local_cold_start(env: &[(String, String)], body: &str) -> ColdRun {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, support::free_port()));
    let started = Instant::now();
    let mut child = support::gateway_command(env)
        .env("BIND", addr.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the gateway starts");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    loop {
        match lines.next() {
            Some(Ok(line)) if line.contains(r#""message":"listening""#) => break,
            Some(Ok(_)) => continue,
            _ => panic!("the gateway exited before listening"),
        }
    }
    let to_ready_ms = started.elapsed().as_secs_f64() * 1e3;
    std::thread::spawn(move || for _ in lines {});
    let answer = support::http_post(addr, "/v1/generate", body).expect("answer");
    let to_hit_ms = started.elapsed().as_secs_f64() * 1e3;
    assert_eq!(
        (answer.status, answer.header("x-cache")),
        (200, Some("HIT")),
        "{}",
        answer.body
    );
    std::thread::sleep(Duration::from_millis(200));
    let (peak_kb, idle_kb) = support::rss_kb(child.id());
    let _ = child.kill();
    let _ = child.wait();
    ColdRun {
        to_ready_ms,
        to_hit_ms,
        peak_kb,
        idle_kb,
    }
}

// ---------------------------------------------------------------------------------------
// A fake Lambda Runtime API on loopback.

struct Delivered {
    at: Instant,
    body: String,
}

#[derive(Default)]
struct RuntimeState {
    queue: VecDeque<String>,
    /// When each event was handed out.
    handed_out: Vec<Instant>,
}

struct FakeRuntime {
    addr: SocketAddr,
    state: Arc<Mutex<RuntimeState>>,
    delivered: mpsc::Receiver<Delivered>,
}

impl FakeRuntime {
    fn start() -> FakeRuntime {
        use axum::extract::State;
        use axum::routing::{get, post};
        type Shared = (Arc<Mutex<RuntimeState>>, mpsc::Sender<Delivered>);
        let state = Arc::new(Mutex::new(RuntimeState::default()));
        let (tx, delivered) = mpsc::channel();
        let (addr_tx, addr_rx) = mpsc::channel();
        let shared: Shared = (state.clone(), tx);
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let next = |State((state, _)): State<Shared>| async move {
                    let event = {
                        let mut s = state.lock().unwrap();
                        let event = s.queue.pop_front();
                        if event.is_some() {
                            s.handed_out.push(Instant::now());
                        }
                        event
                    };
                    let Some(event) = event else {
                        // No more work: hold the poll open as the real runtime does.
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                        return axum::http::Response::new(axum::body::Body::empty());
                    };
                    let deadline = (std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .expect("clock")
                        .as_millis()
                        + 30_000)
                        .to_string();
                    axum::http::Response::builder()
                        .header("lambda-runtime-aws-request-id", "bench-request")
                        .header("lambda-runtime-deadline-ms", deadline)
                        .header(
                            "lambda-runtime-invoked-function-arn",
                            "arn:aws:lambda:us-east-1:123456789012:function:ai-gateway",
                        )
                        .body(axum::body::Body::from(event))
                        .expect("response")
                };
                let respond = |State((_, tx)): State<Shared>, body: axum::body::Bytes| async move {
                    let _ = tx.send(Delivered {
                        at: Instant::now(),
                        body: String::from_utf8_lossy(&body).into_owned(),
                    });
                    axum::http::StatusCode::ACCEPTED
                };
                let app = axum::Router::new()
                    .route("/2018-06-01/runtime/invocation/next", get(next))
                    .route(
                        "/2018-06-01/runtime/invocation/{id}/response",
                        post(respond),
                    )
                    .route("/2018-06-01/runtime/invocation/{id}/error", post(respond))
                    .with_state(shared);
                let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
                    .await
                    .expect("bind");
                addr_tx.send(listener.local_addr().expect("addr")).ok();
                axum::serve(listener, app).await.expect("serve");
            });
        });
        FakeRuntime {
            addr: addr_rx.recv().expect("runtime address"),
            state,
            delivered,
        }
    }

    fn queue(&self, event: &str, n: usize) {
        let mut s = self.state.lock().unwrap();
        s.queue.clear();
        s.handed_out.clear();
        s.queue.extend(std::iter::repeat_n(event.to_string(), n));
        while self.delivered.try_recv().is_ok() {}
    }

    fn handed_out(&self) -> Vec<Instant> {
        self.state.lock().unwrap().handed_out.clone()
    }
}

/// An API Gateway HTTP API (v2) event carrying `body` to `POST /v1/generate`.
fn api_gateway_event(body: &str) -> String {
    let mut event: serde_json::Value =
        serde_json::from_str(include_str!("../events/generate.json"))
            .expect("events/generate.json");
    event["headers"]["x-api-key"] = support::GATEWAY_KEY.into();
    event["headers"]["content-length"] = body.len().to_string().into();
    event["body"] = body.into();
    event.to_string()
}

fn is_hit(delivered: &Delivered) -> bool {
    let v: serde_json::Value = serde_json::from_str(&delivered.body).unwrap_or_default();
    v["statusCode"] == 200 && v["headers"]["x-cache"] == "HIT"
}

fn lambda_command(env: &[(String, String)], runtime: &FakeRuntime) -> std::process::Command {
    let mut cmd = support::gateway_command(env);
    cmd.env("AWS_LAMBDA_RUNTIME_API", runtime.addr.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", "ai-gateway")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/ai-gateway")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd
}

fn lambda_cold_start(env: &[(String, String)], runtime: &FakeRuntime, event: &str) -> ColdRun {
    runtime.queue(event, 1);
    let started = Instant::now();
    let mut child = lambda_command(env, runtime).spawn().expect("starts");
    let delivered = runtime
        .delivered
        .recv_timeout(Duration::from_secs(15))
        .expect("the function answers");
    assert!(is_hit(&delivered), "{}", delivered.body);
    let first_next = runtime.handed_out()[0];
    std::thread::sleep(Duration::from_millis(200));
    let (peak_kb, idle_kb) = support::rss_kb(child.id());
    let _ = child.kill();
    let _ = child.wait();
    ColdRun {
        to_ready_ms: (first_next - started).as_secs_f64() * 1e3,
        to_hit_ms: (delivered.at - started).as_secs_f64() * 1e3,
        peak_kb,
        idle_kb,
    }
}

/// Per-invocation times (µs) of `WARM_INVOCATIONS` hits, after the instance is warm.
fn lambda_warm(env: &[(String, String)], runtime: &FakeRuntime, event: &str) -> Vec<f64> {
    runtime.queue(event, 100 + WARM_INVOCATIONS);
    let mut child = lambda_command(env, runtime).spawn().expect("starts");
    let mut delivered = Vec::with_capacity(100 + WARM_INVOCATIONS);
    for _ in 0..100 + WARM_INVOCATIONS {
        delivered.push(
            runtime
                .delivered
                .recv_timeout(Duration::from_secs(15))
                .expect("the function answers"),
        );
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(delivered.iter().all(is_hit));
    let handed_out = runtime.handed_out();
    handed_out
        .iter()
        .zip(&delivered)
        .skip(100)
        .map(|(out, back)| (back.at - *out).as_secs_f64() * 1e6)
        .collect()
}

fn cold_row(label: &str, runs: &[ColdRun], ready_label: &str) -> String {
    let mut hit: Vec<f64> = runs.iter().map(|r| r.to_hit_ms).collect();
    let ready: Vec<f64> = runs.iter().map(|r| r.to_ready_ms).collect();
    let peak: Vec<f64> = runs.iter().map(|r| r.peak_kb as f64 / 1024.0).collect();
    let idle: Vec<f64> = runs.iter().map(|r| r.idle_kb as f64 / 1024.0).collect();
    format!(
        "| {label} | {} | {:.2} ({ready_label}) | {:.2} | {:.2} | {:.2} | {:.1} | {:.1} |\n",
        runs.len(),
        median(&ready),
        median(&hit),
        percentile(&mut hit, 90.0),
        hit.iter().cloned().fold(0.0, f64::max),
        median(&peak),
        median(&idle),
    )
}

fn main() {
    let runs = runs();
    let redis = support::Redis::start();
    let upstream = support::instant_upstream();
    let env = support::gateway_env(Some(&redis.url()), &upstream);
    let body = support::generate_body("Ada Lovelace");

    // Seed the entry through the gateway itself (this also loads the scripts into Redis).
    {
        let gateway = LocalGateway::spawn(&env);
        let answer = support::http_post(gateway.addr, "/v1/generate", &body).expect("seed");
        assert_eq!(answer.status, 200, "{}", answer.body);
        let again = support::http_post(gateway.addr, "/v1/generate", &body).expect("hit");
        assert_eq!(again.header("x-cache"), Some("HIT"));
    }

    let local: Vec<ColdRun> = (0..runs).map(|_| local_cold_start(&env, &body)).collect();
    // The same without building the HTTPS client for Anthropic (it loads the system's root
    // certificates): what building that client on the first miss, not at start, would give.
    let mut mock_env = env.clone();
    mock_env.push(("MOCK_UPSTREAM".into(), "true".into()));
    let local_mock: Vec<ColdRun> = (0..runs)
        .map(|_| local_cold_start(&mock_env, &body))
        .collect();
    let runtime = FakeRuntime::start();
    let event = api_gateway_event(&body);
    let mut multi_env = env.clone();
    multi_env.push(("WORKER_THREADS".into(), "2".into()));
    let lambda: Vec<ColdRun> = (0..runs)
        .map(|_| lambda_cold_start(&env, &runtime, &event))
        .collect();
    let lambda_multi: Vec<ColdRun> = (0..runs)
        .map(|_| lambda_cold_start(&multi_env, &runtime, &event))
        .collect();

    let mut md = format!(
        "## Cold start and memory\n\n\
         Command: `cargo bench --bench cold_start` (binary: `{}`). {runs} runs each; a private \
         redis-server already holds the entry (seeded through the gateway). Times from `exec` \
         in the bench process; RSS from `/proc/<pid>/status` (VmHWM = peak, VmRSS 200 ms after \
         the hit = idle).\n\n\
         | mode | runs | median ms to ready | median ms exec → first hit answered | p90 ms | max ms | peak RSS MB | idle RSS MB |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|\n",
        support::gateway_bin().display()
    );
    md.push_str(&cold_row("local server", &local, "listening"));
    md.push_str(&cold_row(
        "local server, MOCK_UPSTREAM=true (no HTTPS client built)",
        &local_mock,
        "listening",
    ));
    md.push_str(&cold_row(
        "Lambda, current-thread (default)",
        &lambda,
        "first /next",
    ));
    md.push_str(&cold_row(
        "Lambda, WORKER_THREADS=2 (multi-thread)",
        &lambda_multi,
        "first /next",
    ));

    md.push_str(&format!(
        "\nLambda, warm: {WARM_INVOCATIONS} hits invoked one after another (after 100 \
         unmeasured), time from the runtime handing out the event to receiving the response; \
         {WARM_REPEATS} instances each, figures are the median over instances (spread = \
         (max − min) / median of the instance figures):\n\n\
         | runtime | p50 µs | p99 µs | mean µs | spread of p50 |\n|---|---:|---:|---:|---:|\n"
    ));
    for (label, env) in [
        ("current-thread (default)", &env),
        ("multi-thread, WORKER_THREADS=2", &multi_env),
    ] {
        let mut p50s = Vec::new();
        let mut p99s = Vec::new();
        let mut means = Vec::new();
        for _ in 0..WARM_REPEATS {
            let mut micros = lambda_warm(env, &runtime, &event);
            means.push(micros.iter().sum::<f64>() / micros.len() as f64);
            p50s.push(percentile(&mut micros, 50.0));
            p99s.push(percentile(&mut micros, 99.0));
        }
        md.push_str(&format!(
            "| {label} | {:.1} | {:.1} | {:.1} | {:.0} % |\n",
            median(&p50s),
            median(&p99s),
            median(&means),
            support::spread_pct(&p50s)
        ));
    }
    support::write_section("30-cold-start", &md);
}
