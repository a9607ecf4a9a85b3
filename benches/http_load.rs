//! Over HTTP: the release binary as a local server on loopback, loaded by `wrk` with 16
//! connections, on the hit path and the miss path, against a private redis-server and the
//! memory store; and the Redis round trips of one hit and one miss, counted with `MONITOR`.
//!
//! `cargo bench --bench http_load` (needs `wrk`: `apt-get install -y wrk`).
//! `HTTP_LOAD_SECS` (default 10) and `HTTP_LOAD_REPEATS` (default 3) bound the runs.

#[path = "support/mod.rs"]
mod support;

use std::process::Command;

use support::{LocalGateway, Redis};

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn lua_headers() -> String {
    format!(
        "wrk.method = \"POST\"\n\
         wrk.headers[\"content-type\"] = \"application/json\"\n\
         wrk.headers[\"x-api-key\"] = \"{}\"\n",
        support::GATEWAY_KEY
    )
}

/// Every request the same body: after the first, all hits.
fn hit_script(body: &str) -> String {
    format!("{}wrk.body = [[{body}]]\n", lua_headers())
}

/// Every request a new contact: all misses (`run` keeps repeated runs apart).
fn miss_script() -> String {
    let template = support::generate_body("%s");
    format!(
        "{}\
         local threads = 0\n\
         function setup(thread) threads = threads + 1; thread:set(\"tid\", threads) end\n\
         local run = \"\"\n\
         function init(args) run = args[1] end\n\
         local counter = 0\n\
         request = function()\n\
           counter = counter + 1\n\
           local body = string.format([[{template}]], run .. \"-\" .. tid .. \"-\" .. counter)\n\
           return wrk.format(nil, nil, nil, body)\n\
         end\n",
        lua_headers()
    )
}

struct WrkRun {
    rps: f64,
    p50_us: f64,
    p99_us: f64,
    non_2xx: u64,
}

fn micros(text: &str) -> f64 {
    let (number, unit) =
        text.split_at(text.find(|c: char| c.is_alphabetic()).unwrap_or(text.len()));
    let n: f64 = number.parse().unwrap_or(f64::NAN);
    match unit {
        "us" => n,
        "ms" => n * 1e3,
        "s" => n * 1e6,
        _ => f64::NAN,
    }
}

fn wrk(addr: std::net::SocketAddr, script: &std::path::Path, secs: u64, run: &str) -> WrkRun {
    let output = Command::new("wrk")
        .args([
            "-t2",
            "-c16",
            &format!("-d{secs}s"),
            "--timeout",
            "5s",
            "--latency",
        ])
        .arg("-s")
        .arg(script)
        .arg(format!("http://{addr}/v1/generate"))
        .args(["--", run])
        .output()
        .expect("wrk runs (apt-get install -y wrk)");
    let text = String::from_utf8_lossy(&output.stdout);
    let find = |prefix: &str| {
        text.lines()
            .map(str::trim)
            .find_map(|l| l.strip_prefix(prefix))
            .map(|v| v.trim().to_string())
    };
    WrkRun {
        rps: find("Requests/sec:")
            .and_then(|v| v.parse().ok())
            .unwrap_or(f64::NAN),
        p50_us: find("50%").map(|v| micros(&v)).unwrap_or(f64::NAN),
        p99_us: find("99%").map(|v| micros(&v)).unwrap_or(f64::NAN),
        non_2xx: find("Non-2xx or 3xx responses:")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
    }
}

/// The command names of what clients sent, e.g. `evalsha`.
fn command_names(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .filter_map(|l| l.split('"').nth(1).map(str::to_lowercase))
        .collect()
}

fn main() {
    let secs = env_num("HTTP_LOAD_SECS", 10);
    let repeats = env_num("HTTP_LOAD_REPEATS", 3) as usize;
    let redis = Redis::start();
    let upstream = support::instant_upstream();
    let dir = tempfile::tempdir().expect("temp dir");
    let hit_body = support::generate_body("Ada Lovelace");
    let hit_lua = dir.path().join("hit.lua");
    let miss_lua = dir.path().join("miss.lua");
    std::fs::write(&hit_lua, hit_script(&hit_body)).expect("write");
    std::fs::write(&miss_lua, miss_script()).expect("write");

    // Round trips, counted on the server.
    let env = support::gateway_env(Some(&redis.url()), &upstream);
    let trips = {
        let gateway = LocalGateway::spawn(&env);
        let warm = support::http_post(gateway.addr, "/v1/generate", &hit_body).expect("warm");
        assert_eq!(warm.status, 200, "{}", warm.body);
        const N: usize = 10;
        let monitor = redis.monitor();
        for i in 0..N {
            let body = support::generate_body(&format!("Round trip {i}"));
            let a = support::http_post(gateway.addr, "/v1/generate", &body).expect("miss");
            assert_eq!(a.header("x-cache"), Some("MISS"));
        }
        let miss = monitor.round_trips();
        drop(monitor);
        let monitor = redis.monitor();
        for _ in 0..N {
            let a = support::http_post(gateway.addr, "/v1/generate", &hit_body).expect("hit");
            assert_eq!(a.header("x-cache"), Some("HIT"));
        }
        let hit = monitor.round_trips();
        let names = |lines: &[String]| {
            let mut n = command_names(lines);
            n.sort();
            n.dedup();
            n.join(", ")
        };
        format!(
            "## Redis round trips\n\n\
             Command: `cargo bench --bench http_load` (first part). `MONITOR` on the private \
             redis-server while the gateway answers {N} misses, then {N} hits, over HTTP; \
             commands run inside a script (`[0 lua]`) are not round trips and are excluded.\n\n\
             | path | round trips per request | commands | budget |\n|---|---:|---|---|\n\
             | hit | {} | {} | exactly 1 |\n| miss | {} | {} | ≤ 2 (besides the upstream call) |\n",
            hit.len() as f64 / N as f64,
            names(&hit),
            miss.len() as f64 / N as f64,
            names(&miss),
        )
    };
    support::write_section("20-round-trips", &trips);

    let mut md = format!(
        "## Over HTTP (wrk, 16 connections)\n\n\
         Command: `cargo bench --bench http_load`, which runs `wrk -t2 -c16 -d{secs}s --latency` \
         against the release binary on 127.0.0.1 ({repeats} runs per row; the table gives the \
         median run and the spread (max − min) / median of req/s). wrk, the gateway, \
         redis-server and the upstream share the machine's cores. Logs at `info` (JSON) to \
         /dev/null. Misses go to a local upstream that answers at once; every miss request \
         carries a new prompt. Install wrk with `apt-get install -y wrk` (Debian package).\n\n\
         | store | path | WORKER_THREADS | req/s | p50 µs | p99 µs | spread req/s | non-2xx |\n\
         |---|---|---|---:|---:|---:|---:|---:|\n"
    );
    let rows: [(&str, &str, Option<&str>); 6] = [
        ("redis", "hit", None),
        ("redis", "miss", None),
        ("redis", "hit", Some("1")),
        ("redis", "miss", Some("1")),
        ("memory", "hit", None),
        ("memory", "miss", None),
    ];
    for (i, (store, path, workers)) in rows.iter().enumerate() {
        let redis_url = redis.url();
        let mut env = support::gateway_env((*store == "redis").then_some(&redis_url), &upstream);
        if let Some(n) = workers {
            env.push(("WORKER_THREADS".into(), n.to_string()));
        }
        let gateway = LocalGateway::spawn(&env);
        let first = support::http_post(gateway.addr, "/v1/generate", &hit_body).expect("seed");
        assert_eq!(first.status, 200, "{}", first.body);
        let script = if *path == "hit" { &hit_lua } else { &miss_lua };
        let mut runs: Vec<WrkRun> = (0..repeats)
            .map(|r| wrk(gateway.addr, script, secs, &format!("{i}-{r}")))
            .collect();
        let rps: Vec<f64> = runs.iter().map(|r| r.rps).collect();
        runs.sort_by(|a, b| a.rps.total_cmp(&b.rps));
        let mid = &runs[runs.len() / 2];
        md.push_str(&format!(
            "| {store} | {path} | {} | {:.0} | {:.0} | {:.0} | {:.0} % | {} |\n",
            workers.unwrap_or("unset (= cores)"),
            mid.rps,
            mid.p50_us,
            mid.p99_us,
            support::spread_pct(&rps),
            runs.iter().map(|r| r.non_2xx).sum::<u64>(),
        ));
    }
    support::write_section("40-http-load", &md);
}
