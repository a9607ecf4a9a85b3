//! A private `redis-server` per test, on a free port, plain TCP or TLS (Upstash-like).
//!
//! The shared Redis on 6379 is never touched. Every server lives in its own temporary
//! directory (config, certificates, log) and is killed when the [`RedisServer`] is dropped.
//!
//! The harness talks to the server with a tiny blocking RESP2 client (run on tokio's
//! blocking pool), so it never sends anything beyond the commands it is asked for
//! (plus `AUTH` on password-protected servers). Those commands are tallied, so that
//! [`RedisServer::commands_processed`] and [`RedisServer::command_stats`] report only
//! what *other* clients (the gateway) sent.

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::process::{Child, Command};

const REDIS_SERVER: &str = "/usr/bin/redis-server";
/// How long a (re)start may take before it is retried or declared failed.
const READY_TIMEOUT: Duration = Duration::from_secs(15);
/// Socket timeouts of the harness' own client.
const IO_TIMEOUT: Duration = Duration::from_secs(10);
const START_ATTEMPTS: usize = 5;

/// A private `redis-server` child process.
pub struct RedisServer {
    pub port: u16,
    child: Option<Child>,
    mode: Mode,
    own: Arc<OwnTally>,
    // Declared last so the directory outlives the child it belongs to.
    dir: tempfile::TempDir,
}

#[derive(Clone)]
enum Mode {
    Plain,
    Tls(TlsMode),
}

#[derive(Clone)]
struct TlsMode {
    password: String,
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    client: Arc<rustls::ClientConfig>,
}

/// Commands the harness itself got processed by the current server process.
#[derive(Default)]
struct OwnTally {
    inner: Mutex<Tally>,
}

#[derive(Default)]
struct Tally {
    total: u64,
    per_command: HashMap<String, u64>,
}

impl OwnTally {
    fn record(&self, args: &[&str], reply: &Resp) {
        if !counted_by_redis(reply) {
            return;
        }
        let mut t = self.inner.lock().unwrap();
        t.total += 1;
        *t.per_command.entry(stat_name(args)).or_default() += 1;
    }

    fn reset(&self) {
        *self.inner.lock().unwrap() = Tally::default();
    }

    fn total(&self) -> u64 {
        self.inner.lock().unwrap().total
    }

    fn per_command(&self) -> HashMap<String, u64> {
        self.inner.lock().unwrap().per_command.clone()
    }
}

impl RedisServer {
    /// Plain TCP, no password, on a free port; returns once it answers PING.
    pub async fn start() -> RedisServer {
        let dir = tempdir();
        Self::launch(dir, Mode::Plain).await
    }

    /// TLS only (`--port 0 --tls-port P`), a fresh self-signed CA and a server certificate for
    /// `localhost` + 127.0.0.1 signed by it, `--tls-auth-clients no`, `--requirepass PASSWORD`.
    /// Returns once a TLS client trusting that CA can PING with the password.
    pub async fn start_tls(password: &str) -> RedisServer {
        let dir = tempdir();
        let (ca, cert, key) = make_ca_and_cert(dir.path());
        let client = Arc::new(tls_client_config(&ca));
        let mode = Mode::Tls(TlsMode {
            password: password.to_owned(),
            ca,
            cert,
            key,
            client,
        });
        Self::launch(dir, mode).await
    }

    async fn launch(dir: tempfile::TempDir, mode: Mode) -> RedisServer {
        let mut server = RedisServer {
            port: 0,
            child: None,
            mode,
            own: Arc::default(),
            dir,
        };
        let mut failures = Vec::new();
        for _ in 0..START_ATTEMPTS {
            server.port = free_port();
            match server.spawn_and_wait().await {
                Ok(()) => return server,
                Err(e) => failures.push(format!("port {}: {e}", server.port)),
            }
        }
        panic!(
            "redis-server did not start after {START_ATTEMPTS} attempts: {failures:?}\n--- redis.log ---\n{}",
            server.log()
        );
    }

    /// The URL the gateway should use: `redis://127.0.0.1:P` or `rediss://:PASSWORD@localhost:P`.
    pub fn url(&self) -> String {
        match &self.mode {
            Mode::Plain => format!("redis://127.0.0.1:{}", self.port),
            Mode::Tls(t) => format!(
                "rediss://:{}@localhost:{}",
                percent_encode(&t.password),
                self.port
            ),
        }
    }

    /// For TLS: path of the CA PEM file (gateway env `REDIS_CA_FILE`); `None` for plain.
    pub fn ca_file(&self) -> Option<PathBuf> {
        match &self.mode {
            Mode::Plain => None,
            Mode::Tls(t) => Some(t.ca.clone()),
        }
    }

    /// The server's log file (handy in assertion messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("redis.log")).unwrap_or_default()
    }

    /// Kill the server (SIGKILL) and wait until the port refuses connections.
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.start_kill();
            let _ = tokio::time::timeout(READY_TIMEOUT, child.wait()).await;
        }
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let refused = tokio::net::TcpStream::connect(addr).await.is_err();
            if refused {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "port {} still accepts connections after redis-server was killed",
                self.port
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Start again on the same port with the same config and certificates; returns once it
    /// answers. Data is not kept (no persistence). Stops the server first if it is running.
    pub async fn restart(&mut self) {
        self.stop().await;
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            match self.spawn_and_wait().await {
                Ok(()) => return,
                Err(e) if Instant::now() < deadline => {
                    eprintln!("redis restart on port {} failed, retrying: {e}", self.port);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!(
                    "redis-server did not restart on port {}: {e}\n--- redis.log ---\n{}",
                    self.port,
                    self.log()
                ),
            }
        }
    }

    /// Run one command and return the reply as a string: bulk/simple strings as is, integers
    /// in decimal, nil as `(nil)`, errors as `(error) MESSAGE`, arrays (flattened) joined
    /// with `'\n'` (an empty array is `""`). Works for plain and TLS servers.
    pub async fn cmd(&self, args: &[&str]) -> String {
        let owned: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let target = self.target();
        let reply = tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = owned.iter().map(String::as_str).collect();
            let mut session = target.connect()?;
            session.call(&args)
        })
        .await
        .expect("redis cmd task panicked");
        match reply {
            Ok(r) => r.render(),
            Err(e) => panic!("redis cmd {args:?} on port {} failed: {e}", self.port),
        }
    }

    /// `total_commands_processed` from `INFO stats`, minus every command the harness itself
    /// had processed (readiness probes, `AUTH`, `cmd`, `INFO`, this call included), so that
    /// `after - before` counts exactly the commands other clients sent in between.
    /// Resets with the server process (after [`restart`](Self::restart)).
    pub async fn commands_processed(&self) -> u64 {
        // INFO is counted only after its own reply is built, so the figure it reports
        // covers exactly the commands tallied before it was sent.
        let own_before = self.own.total();
        let info = self.info("stats").await;
        let total: u64 = info_field(&info, "total_commands_processed")
            .unwrap_or_else(|| panic!("no total_commands_processed in INFO stats:\n{info}"))
            .parse()
            .expect("total_commands_processed is a number");
        total.saturating_sub(own_before)
    }

    /// Per-command call counts from `INFO commandstats`, e.g. `{"evalsha": 3, "get": 1}`,
    /// minus the commands the harness itself sent (so `info`/`auth`/`ping` and whatever went
    /// through [`cmd`](Self::cmd) do not show up unless another client sent them too).
    /// Sub-commands are keyed like Redis does: `"client|setname"`, `"script|load"`.
    /// Commands with zero calls left are omitted.
    pub async fn command_stats(&self) -> HashMap<String, u64> {
        let own = self.own.per_command();
        let info = self.info("commandstats").await;
        let mut stats = HashMap::new();
        for line in info.lines() {
            let Some(rest) = line.trim().strip_prefix("cmdstat_") else {
                continue;
            };
            let Some((name, fields)) = rest.split_once(':') else {
                continue;
            };
            let calls = fields
                .split(',')
                .find_map(|f| f.strip_prefix("calls="))
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
            let name = name.to_ascii_lowercase();
            let calls = calls.saturating_sub(own.get(&name).copied().unwrap_or(0));
            if calls > 0 {
                stats.insert(name, calls);
            }
        }
        stats
    }

    async fn info(&self, section: &str) -> String {
        self.cmd(&["INFO", section]).await
    }

    fn target(&self) -> Target {
        Target {
            port: self.port,
            tls: match &self.mode {
                Mode::Plain => None,
                Mode::Tls(t) => Some((t.client.clone(), t.password.clone())),
            },
            own: self.own.clone(),
        }
    }

    fn command(&self) -> Command {
        let dir = self.dir.path();
        let mut cmd = Command::new(REDIS_SERVER);
        cmd.arg("--bind")
            .arg("127.0.0.1")
            .arg("--save")
            .arg("")
            .arg("--appendonly")
            .arg("no")
            .arg("--dir")
            .arg(dir)
            .arg("--protected-mode")
            .arg("no")
            .arg("--daemonize")
            .arg("no")
            .arg("--logfile")
            .arg(dir.join("redis.log"));
        match &self.mode {
            Mode::Plain => {
                cmd.arg("--port").arg(self.port.to_string());
            }
            Mode::Tls(t) => {
                cmd.arg("--port")
                    .arg("0")
                    .arg("--tls-port")
                    .arg(self.port.to_string())
                    .arg("--tls-cert-file")
                    .arg(&t.cert)
                    .arg("--tls-key-file")
                    .arg(&t.key)
                    .arg("--tls-ca-cert-file")
                    .arg(&t.ca)
                    .arg("--tls-auth-clients")
                    .arg("no")
                    .arg("--requirepass")
                    .arg(&t.password);
            }
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        cmd
    }

    /// Spawn on `self.port` and wait until *this* child (checked by pid, so a server of
    /// another test that grabbed the port is not mistaken for ours) answers.
    async fn spawn_and_wait(&mut self) -> Result<(), String> {
        self.own.reset();
        let mut child = self
            .command()
            .spawn()
            .map_err(|e| format!("cannot spawn {REDIS_SERVER}: {e}"))?;
        let pid = child.id().expect("fresh child has a pid");
        let deadline = Instant::now() + READY_TIMEOUT;
        let target = self.target();
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!("redis-server exited early with {status}"));
            }
            let probe = target.clone();
            let answered = tokio::task::spawn_blocking(move || probe.probe_pid())
                .await
                .expect("probe task panicked");
            match answered {
                Some(p) if p == pid => {
                    self.child = Some(child);
                    return Ok(());
                }
                _ if Instant::now() >= deadline => {
                    let _ = child.start_kill();
                    let _ = child.wait().await;
                    return Err("not answering in time".into());
                }
                _ => tokio::time::sleep(Duration::from_millis(25)).await,
            }
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
    }
}

/// What the harness needs to open its own connection (cheap to clone into blocking tasks).
#[derive(Clone)]
struct Target {
    port: u16,
    tls: Option<(Arc<rustls::ClientConfig>, String)>,
    own: Arc<OwnTally>,
}

impl Target {
    /// Connect (TLS handshake and AUTH included).
    fn connect(&self) -> io::Result<Session> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        let tcp = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        tcp.set_read_timeout(Some(IO_TIMEOUT))?;
        tcp.set_write_timeout(Some(IO_TIMEOUT))?;
        tcp.set_nodelay(true)?;
        match &self.tls {
            None => Ok(Session {
                io: BufReader::new(Conn::Plain(tcp)),
                own: self.own.clone(),
            }),
            Some((config, password)) => {
                let name = ServerName::try_from("localhost").expect("valid server name");
                let conn = rustls::ClientConnection::new(config.clone(), name)
                    .map_err(io::Error::other)?;
                let mut stream = rustls::StreamOwned::new(conn, tcp);
                // Finish the handshake now so certificate problems surface here.
                while stream.conn.is_handshaking() {
                    stream.conn.complete_io(&mut stream.sock)?;
                }
                let mut session = Session {
                    io: BufReader::new(Conn::Tls(Box::new(stream))),
                    own: self.own.clone(),
                };
                match session.call(&["AUTH", password])? {
                    Resp::Simple(ok) if ok == "OK" => Ok(session),
                    other => Err(io::Error::other(format!("AUTH failed: {}", other.render()))),
                }
            }
        }
    }

    /// The pid of the redis-server answering on the port, if any answers.
    fn probe_pid(&self) -> Option<u32> {
        let mut session = self.connect().ok()?;
        let info = session.call_untallied(&["INFO", "server"]).ok()?;
        let pid = info_field(&info.render(), "process_id")?.parse().ok()?;
        // Only now is it known that the reply came from our server: tally it.
        session.own.record(&["INFO", "server"], &info);
        Some(pid)
    }
}

fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("ai-gateway-redis-")
        .tempdir()
        .expect("create temp dir for redis")
}

/// A port that was free a moment ago (bind 127.0.0.1:0, then release it).
fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr").port()
}

/// Generate a self-signed CA and a server certificate for `localhost` + 127.0.0.1 signed by
/// it, in `dir`. Returns `(ca_pem_path, cert_pem_path, key_pem_path)`.
fn make_ca_and_cert(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.distinguished_name = DistinguishedName::new();
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "ai-gateway test CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca_params.self_signed(&ca_key).expect("self-sign CA");
    let issuer = Issuer::new(ca_params, ca_key);

    let key = KeyPair::generate().expect("server key");
    let mut params = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .expect("server cert params");
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    let cert = params.signed_by(&key, &issuer).expect("sign server cert");

    let ca_path = dir.join("ca.pem");
    let cert_path = dir.join("redis.crt");
    let key_path = dir.join("redis.key");
    std::fs::write(&ca_path, ca_cert.pem()).expect("write CA");
    std::fs::write(&cert_path, cert.pem()).expect("write cert");
    std::fs::write(&key_path, key.serialize_pem()).expect("write key");
    (ca_path, cert_path, key_path)
}

/// A rustls client config trusting only the CA in `ca_pem`.
fn tls_client_config(ca_pem: &Path) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca_pem).expect("read CA PEM") {
        roots.add(cert.expect("parse CA PEM")).expect("add CA");
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth()
}

fn percent_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn info_field<'a>(info: &'a str, field: &str) -> Option<&'a str> {
    info.lines().find_map(|line| {
        let (k, v) = line.trim().split_once(':')?;
        (k == field).then_some(v)
    })
}

/// Does Redis count this reply's command in `total_commands_processed` / commandstats?
/// Commands rejected before execution (unknown, wrong arity, not authenticated, loading)
/// are not counted; commands that ran and failed are.
fn counted_by_redis(reply: &Resp) -> bool {
    match reply {
        Resp::Error(e) => ![
            "ERR unknown command",
            "ERR unknown subcommand",
            "ERR wrong number of arguments",
            "NOAUTH",
            "LOADING",
        ]
        .iter()
        .any(|p| e.starts_with(p)),
        _ => true,
    }
}

/// The commandstats name of a command: `get`, or `client|setname` for container commands.
fn stat_name(args: &[&str]) -> String {
    const CONTAINERS: &[&str] = &[
        "acl", "client", "cluster", "command", "config", "function", "latency", "memory", "module",
        "object", "pubsub", "script", "slowlog", "xgroup", "xinfo",
    ];
    let name = args
        .first()
        .map(|s| s.to_ascii_lowercase())
        .unwrap_or_default();
    match args.get(1) {
        Some(sub) if CONTAINERS.contains(&name.as_str()) => {
            format!("{name}|{}", sub.to_ascii_lowercase())
        }
        _ => name,
    }
}

// ---------------------------------------------------------------------------------------
// Minimal blocking RESP2 client.

enum Conn {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(s) => s.read(buf),
            Conn::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(s) => s.write(buf),
            Conn::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Conn::Plain(s) => s.flush(),
            Conn::Tls(s) => s.flush(),
        }
    }
}

struct Session {
    io: BufReader<Conn>,
    own: Arc<OwnTally>,
}

impl Session {
    fn call(&mut self, args: &[&str]) -> io::Result<Resp> {
        let reply = self.call_untallied(args)?;
        self.own.record(args, &reply);
        Ok(reply)
    }

    fn call_untallied(&mut self, args: &[&str]) -> io::Result<Resp> {
        let mut req = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            req.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            req.extend_from_slice(a.as_bytes());
            req.extend_from_slice(b"\r\n");
        }
        let conn = self.io.get_mut();
        conn.write_all(&req)?;
        conn.flush()?;
        read_resp(&mut self.io)
    }
}

enum Resp {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Resp>>),
}

impl Resp {
    fn render(&self) -> String {
        match self {
            Resp::Simple(s) => s.clone(),
            Resp::Error(e) => format!("(error) {e}"),
            Resp::Int(i) => i.to_string(),
            Resp::Bulk(Some(b)) => String::from_utf8_lossy(b).into_owned(),
            Resp::Bulk(None) | Resp::Array(None) => "(nil)".to_owned(),
            Resp::Array(Some(items)) => items
                .iter()
                .map(Resp::render)
                .collect::<Vec<_>>()
                .join("\n"),
        }
    }
}

fn read_line(r: &mut impl BufRead) -> io::Result<String> {
    let mut line = Vec::new();
    r.read_until(b'\n', &mut line)?;
    if !line.ends_with(b"\r\n") {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "connection closed mid-reply",
        ));
    }
    line.truncate(line.len() - 2);
    String::from_utf8(line).map_err(io::Error::other)
}

fn read_resp(r: &mut impl BufRead) -> io::Result<Resp> {
    let line = read_line(r)?;
    if !line.is_char_boundary(1) {
        return Err(io::Error::other(format!("unexpected RESP line {line:?}")));
    }
    let (kind, rest) = line.split_at(1);
    let int = |s: &str| {
        s.parse::<i64>()
            .map_err(|_| io::Error::other(format!("bad RESP integer {s:?}")))
    };
    Ok(match kind {
        "+" => Resp::Simple(rest.to_owned()),
        "-" => Resp::Error(rest.to_owned()),
        ":" => Resp::Int(int(rest)?),
        "$" => match int(rest)? {
            n if n < 0 => Resp::Bulk(None),
            n => {
                let mut buf = vec![0; n as usize + 2];
                r.read_exact(&mut buf)?;
                buf.truncate(n as usize);
                Resp::Bulk(Some(buf))
            }
        },
        "*" => match int(rest)? {
            n if n < 0 => Resp::Array(None),
            n => Resp::Array(Some(
                (0..n).map(|_| read_resp(r)).collect::<io::Result<_>>()?,
            )),
        },
        _ => return Err(io::Error::other(format!("unexpected RESP line {line:?}"))),
    })
}

/// A `MONITOR` connection: every command the server runs, as it runs it. Commands run inside
/// a Lua script are marked `[0 lua]`, so the client round trips are the other lines.
pub struct Monitor {
    lines: Arc<std::sync::Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl RedisServer {
    /// Starts monitoring (plain servers only); commands sent before this returns are not seen.
    pub async fn monitor(&self) -> Monitor {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
        let stream = tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .expect("monitor connects");
        let (read, mut write) = stream.into_split();
        write
            .write_all(b"*1\r\n$7\r\nMONITOR\r\n")
            .await
            .expect("MONITOR is sent");
        let mut reader = tokio::io::BufReader::new(read).lines();
        let first = reader.next_line().await.expect("MONITOR answers");
        assert_eq!(first.as_deref(), Some("+OK"), "MONITOR refused");
        let lines = Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = lines.clone();
        let task = tokio::spawn(async move {
            let _keep_open = write;
            while let Ok(Some(line)) = reader.next_line().await {
                sink.lock().unwrap().push(line);
            }
        });
        Monitor { lines, task }
    }
}

impl Monitor {
    /// Client round trips seen so far (script-internal commands excluded), e.g. `"evalsha" ...`.
    pub fn round_trips(&self) -> Vec<String> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| !l.contains(" lua]"))
            .cloned()
            .collect()
    }

    /// Waits briefly so lines still in flight arrive, then returns the round trips.
    pub async fn settle(&self) -> Vec<String> {
        tokio::time::sleep(Duration::from_millis(200)).await;
        self.round_trips()
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        self.task.abort();
    }
}
