//! Shared by the benches: a private redis-server, an upstream that answers instantly, the
//! gateway's settings, a plain HTTP/1.1 client, percentiles and the results files that
//! `scripts/bench.sh` assembles into BENCHMARKS.md.
//!
//! Everything listens on, and talks to, 127.0.0.1 only. The shared Redis on 6379 is never used.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The gateway key the benches present (tenant `bench`), so authentication is on the path.
pub const GATEWAY_KEY: &str = "bench-key-0123456789abcdef";

/// A system prompt and a prompt of the size a Make.com scenario sends (about 150 + 300 bytes).
pub const SYSTEM: &str = "You write cold email openers for B2B sales teams. Two sentences, warm and \
specific, no clichés, no exclamation marks, no questions.";

pub fn prompt(contact: &str) -> String {
    format!(
        "Write an opener for {contact}, Head of Operations at Acme Logistics (Rotterdam, 240 \
         people), who just announced a Series A to expand their cold-chain fleet. Mention the \
         new depot in Antwerp and that we cut route planning time for similar fleets by a third."
    )
}

/// A `/v1/generate` body; a different `contact` is a different cache entry.
pub fn generate_body(contact: &str) -> String {
    serde_json::json!({
        "system": SYSTEM,
        "prompt": prompt(contact),
        "template_id": "opener",
    })
    .to_string()
}

/// What the instant upstream answers: a Messages API reply of ordinary size (~330 bytes of text).
pub const UPSTREAM_ANSWER: &str = r#"{"id":"msg_bench_0001","type":"message","role":"assistant","model":"claude-sonnet-4-6","content":[{"type":"text","text":"Congratulations on the Series A and the new Antwerp depot, a cold-chain fleet growing that fast is exactly where route planning starts eating whole afternoons. We cut planning time by about a third for fleets like yours, and I would be glad to show you how in fifteen minutes whenever suits."}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":96,"output_tokens":61,"cache_creation_input_tokens":0,"cache_read_input_tokens":0}}"#;

/// The gateway's settings for a bench: a real (fake) upstream over HTTP, gateway keys on, a
/// daily limit high enough never to bite but still checked, JSON logs at `info` as deployed.
pub fn gateway_env(redis_url: Option<&str>, upstream_url: &str) -> Vec<(String, String)> {
    let mut env = vec![
        (
            "ANTHROPIC_API_KEY",
            "sk-ant-bench-not-a-real-key".to_string(),
        ),
        ("ANTHROPIC_BASE_URL", upstream_url.to_string()),
        ("GATEWAY_API_KEYS", format!("bench:{GATEWAY_KEY}")),
        ("DAILY_REQUEST_LIMIT", "1000000000".to_string()),
        ("MEMORY_CACHE_MAX_ENTRIES", "10000000".to_string()),
        ("LOG_FORMAT", "json".to_string()),
        ("RUST_LOG", "info".to_string()),
    ];
    if let Some(url) = redis_url {
        env.push(("REDIS_URL", url.to_string()));
    }
    env.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

// ---------------------------------------------------------------------------------------
// A private redis-server.

pub struct Redis {
    pub port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Redis {
    /// A plain redis-server on a free loopback port, no persistence; returns once it answers.
    pub fn start() -> Redis {
        let dir = tempfile::Builder::new()
            .prefix("ai-gateway-bench-redis-")
            .tempdir()
            .expect("temp dir");
        let port = free_port();
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args([
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "yes",
            ])
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts (apt-get install -y redis-server)");
        let redis = Redis {
            port,
            child,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while redis.command(&["PING"]).ok().as_deref() != Some("+PONG") {
            assert!(Instant::now() < deadline, "redis-server did not answer");
            std::thread::sleep(Duration::from_millis(20));
        }
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// One command over a fresh connection; the first reply line (enough for PING, FLUSHALL).
    pub fn command(&self, args: &[&str]) -> std::io::Result<String> {
        let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port))?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut request = format!("*{}\r\n", args.len());
        for a in args {
            request.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        stream.write_all(request.as_bytes())?;
        let mut line = String::new();
        BufReader::new(stream).read_line(&mut line)?;
        Ok(line.trim_end().to_string())
    }

    /// Every command the server runs from now on (`MONITOR`), until the [`Monitor`] is dropped.
    pub fn monitor(&self) -> Monitor {
        let stream = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)).expect("monitor");
        let mut writer = stream.try_clone().expect("clone");
        writer
            .write_all(b"*1\r\n$7\r\nMONITOR\r\n")
            .expect("MONITOR");
        let mut reader = BufReader::new(stream.try_clone().expect("clone"));
        let mut ok = String::new();
        reader.read_line(&mut ok).expect("MONITOR answers");
        assert_eq!(ok.trim_end(), "+OK", "MONITOR refused");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in reader.lines() {
                match line {
                    Ok(line) => sink.lock().unwrap().push(line),
                    Err(_) => break,
                }
            }
        });
        Monitor { lines, stream }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Monitor {
    lines: Arc<Mutex<Vec<String>>>,
    stream: TcpStream,
}

impl Monitor {
    /// Commands clients sent (script-internal ones, marked `[0 lua]`, excluded), after a pause
    /// for lines still in flight.
    pub fn round_trips(&self) -> Vec<String> {
        std::thread::sleep(Duration::from_millis(300));
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| !l.contains(" lua]"))
            .cloned()
            .collect()
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
    }
}

// ---------------------------------------------------------------------------------------
// An upstream that answers every `POST /v1/messages` at once, on its own thread.

/// Serves [`UPSTREAM_ANSWER`] on 127.0.0.1 at a free port; returns `http://127.0.0.1:PORT`.
pub fn instant_upstream() -> String {
    use axum::routing::post;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
                .await
                .expect("bind upstream");
            tx.send(listener.local_addr().expect("addr")).expect("send");
            let app = axum::Router::new().route(
                "/v1/messages",
                post(|| async { ([("content-type", "application/json")], UPSTREAM_ANSWER) }),
            );
            axum::serve(listener, app).await.expect("upstream serves");
        });
    });
    format!("http://{}", rx.recv().expect("upstream address"))
}

// ---------------------------------------------------------------------------------------
// The gateway binary as a child process.

/// `GATEWAY_BIN` when set (to compare builds), else the binary cargo built for this bench.
pub fn gateway_bin() -> PathBuf {
    std::env::var_os("GATEWAY_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_ai-gateway")))
}

pub fn gateway_command(env: &[(String, String)]) -> Command {
    let mut cmd = Command::new(gateway_bin());
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.stdin(Stdio::null());
    cmd
}

/// A local gateway on a free port, its logs discarded; returns once it accepts connections.
pub struct LocalGateway {
    pub addr: SocketAddr,
    child: Child,
}

impl LocalGateway {
    pub fn spawn(env: &[(String, String)]) -> LocalGateway {
        let port = free_port();
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let child = gateway_command(env)
            .env("BIND", addr.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the gateway starts");
        let deadline = Instant::now() + Duration::from_secs(15);
        while TcpStream::connect(addr).is_err() {
            assert!(Instant::now() < deadline, "the gateway did not listen");
            std::thread::sleep(Duration::from_millis(10));
        }
        LocalGateway { addr, child }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for LocalGateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 request on a fresh connection (`connection: close`).
pub struct Answer {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

pub fn http_post(addr: SocketAddr, path: &str, body: &str) -> std::io::Result<Answer> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let request = format!(
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
         x-api-key: {GATEWAY_KEY}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Ok(Answer {
        status,
        head: head.to_string(),
        body: body.to_string(),
    })
}

/// `VmHWM` (peak) and `VmRSS` (now) of a process, in kB.
pub fn rss_kb(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

// ---------------------------------------------------------------------------------------
// Figures.

/// The `p`-th percentile (0..=100) of `samples`, nearest rank.
pub fn percentile(samples: &mut [f64], p: f64) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    samples.sort_by(|a, b| a.total_cmp(b));
    let rank = ((p / 100.0) * samples.len() as f64).ceil() as usize;
    samples[rank.clamp(1, samples.len()) - 1]
}

pub fn median(samples: &[f64]) -> f64 {
    percentile(&mut samples.to_vec(), 50.0)
}

/// Spread of repeated runs, as a share of their median: how much to trust a figure.
pub fn spread_pct(samples: &[f64]) -> f64 {
    let m = median(samples);
    let lo = samples.iter().cloned().fold(f64::INFINITY, f64::min);
    let hi = samples.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    if m == 0.0 { 0.0 } else { (hi - lo) / m * 100.0 }
}

/// Writes one section of BENCHMARKS.md to `$BENCH_RESULTS_DIR/<name>.md`
/// (default `target/bench-results/`), and echoes it.
pub fn write_section(name: &str, markdown: &str) {
    let dir = std::env::var_os("BENCH_RESULTS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-results"));
    std::fs::create_dir_all(&dir).expect("results dir");
    std::fs::write(dir.join(format!("{name}.md")), markdown).expect("write results");
    println!("{markdown}");
}

/// HTTP/1.1 over one kept-alive connection (responses must carry `content-length`).
pub struct KeepAlive {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    addr: SocketAddr,
}

impl KeepAlive {
    pub fn connect(addr: SocketAddr) -> std::io::Result<KeepAlive> {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(120)))?;
        Ok(KeepAlive {
            reader: BufReader::new(stream.try_clone()?),
            writer: stream,
            addr,
        })
    }

    /// Sends one `POST` and returns the status and `x-cache`.
    pub fn post(&mut self, path: &str, body: &str) -> std::io::Result<(u16, Option<String>)> {
        let request = format!(
            "POST {path} HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\n\
             x-api-key: {GATEWAY_KEY}\r\ncontent-length: {}\r\n\r\n{body}",
            self.addr,
            body.len()
        );
        self.writer.write_all(request.as_bytes())?;
        let mut status = 0;
        let mut length = 0usize;
        let mut cache = None;
        loop {
            let mut line = String::new();
            if self.reader.read_line(&mut line)? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if line.starts_with("HTTP/") {
                status = line
                    .split_whitespace()
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
            } else if let Some((k, v)) = line.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse().unwrap_or(0);
                } else if k.eq_ignore_ascii_case("x-cache") {
                    cache = Some(v.trim().to_string());
                }
            }
        }
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body)?;
        Ok((status, cache))
    }
}
