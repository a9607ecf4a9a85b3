//! Instructions per request, counted by valgrind's callgrind in the release binary (local
//! server, one kept-alive connection): the figure to compare code changes by, since it does
//! not move with the load other processes put on the machine.
//!
//! Each store runs three processes under callgrind: a baseline (start, one miss that stores
//! the entry, one hit, shut down) and the same plus `INSTR_REQUESTS` (default 2 000) hits or
//! misses. Instructions per request = (total − baseline) / requests. Redis' own work is in
//! another process and not counted; the gateway's client side of each round trip is.
//!
//! `cargo bench --bench instructions` (needs valgrind: `apt-get install -y valgrind`;
//! `GATEWAY_BIN` to count another build).

#[path = "support/mod.rs"]
mod support;

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{KeepAlive, Redis};

#[derive(Clone, Copy, PartialEq)]
enum Extra {
    None,
    Hits,
    Misses,
}

fn instructions(env: &[(String, String)], extra: Extra, n: usize) -> u64 {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("callgrind.out");
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, support::free_port()));
    let mut cmd = Command::new("valgrind");
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .env("BIND", addr.to_string())
        // A generous store timeout: under valgrind everything is ~50x slower.
        .env("REDIS_TIMEOUT_MS", "10000")
        .arg("--tool=callgrind")
        .arg(format!("--callgrind-out-file={}", out.display()))
        .arg(support::gateway_bin())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("valgrind runs (apt-get install -y valgrind)");
    let deadline = Instant::now() + Duration::from_secs(120);
    while TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "the gateway did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    let hit_body = support::generate_body("Ada Lovelace");
    let mut conn = KeepAlive::connect(addr).expect("connect");
    let seeded = conn.post("/v1/generate", &hit_body).expect("seed");
    assert_eq!(seeded, (200, Some("MISS".into())));
    let hit = conn.post("/v1/generate", &hit_body).expect("hit");
    assert_eq!(hit, (200, Some("HIT".into())));
    for i in 0..n {
        match extra {
            Extra::None => break,
            Extra::Hits => {
                let a = conn.post("/v1/generate", &hit_body).expect("hit");
                assert_eq!(a.1.as_deref(), Some("HIT"));
            }
            Extra::Misses => {
                let body = support::generate_body(&format!("Contact {i}"));
                let a = conn.post("/v1/generate", &body).expect("miss");
                assert_eq!(a.1.as_deref(), Some("MISS"));
            }
        }
    }
    drop(conn);
    // SIGTERM: the server shuts down gracefully and callgrind writes its totals.
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    let text = std::fs::read_to_string(&out).expect("callgrind output");
    text.lines()
        .find_map(|l| {
            l.strip_prefix("summary:")
                .or_else(|| l.strip_prefix("totals:"))
        })
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("callgrind totals")
}

fn main() {
    let n: usize = std::env::var("INSTR_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000);
    let redis = Redis::start();
    let redis_url = redis.url();
    let upstream = support::instant_upstream();
    let mut md = format!(
        "## Instructions per request (callgrind)\n\n\
         Command: `cargo bench --bench instructions` (binary: `{}`). The release binary under \
         `valgrind --tool=callgrind` as a local server, one kept-alive connection; per request \
         = (instructions of a run with {n} extra requests − a baseline run) / {n}. Counts the \
         whole gateway process (hyper, routing, JSON, logging, fred's client side, tokio); \
         not redis-server. Does not move with machine load, so it is the figure code changes \
         are compared by.\n\n\
         | store | path | instructions per request | baseline run (start, 1 miss, 1 hit, stop) |\n\
         |---|---|---:|---:|\n",
        support::gateway_bin().display()
    );
    for (store, url) in [("redis", Some(redis_url.as_str())), ("memory", None)] {
        let env = support::gateway_env(url, &upstream);
        let run = |extra| {
            let _ = redis.command(&["FLUSHALL"]);
            instructions(&env, extra, n)
        };
        let base = run(Extra::None);
        for (path, extra) in [("hit", Extra::Hits), ("miss", Extra::Misses)] {
            let total = run(extra);
            md.push_str(&format!(
                "| {store} | {path} | {} | {base} |\n",
                (total.saturating_sub(base)) / n as u64
            ));
        }
    }
    support::write_section("15-instructions", &md);
}
