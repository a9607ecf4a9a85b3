//! In-process: the router built as the binary builds it, requests through `tower::oneshot`
//! (no sockets between caller and gateway), against a private redis-server and against the
//! memory store. The upstream of a miss is a local server that answers at once.
//!
//! Criterion measures the mean time per request; a second pass then times 20 000 requests one
//! by one for percentiles, next to the floor they sit on: the same admit script called alone
//! through the store, and an `EVALSHA` of `return 1`. What the gateway adds to a hit is the
//! difference.
//!
//! `cargo bench --bench gateway` (add `-- hit` to run only the criterion ids that match).

#[path = "support/mod.rs"]
mod support;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ai_gateway::config::{Config, LogFormat};
use ai_gateway::store::{Admission, Admitted, RedisStore, Store};
use ai_gateway::{cache_key, clock, startup, telemetry};
use axum::Router;
use axum::body::Body;
use axum::http::Request;
use bytes::Bytes;
use criterion::Criterion;
use fred::prelude::*;
use http_body_util::BodyExt;
use tower::ServiceExt;

/// Requests timed one by one per scenario in the percentile pass.
const SAMPLES: usize = 20_000;

fn config(env: &[(String, String)]) -> Config {
    Config::from_lookup(|k| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()))
        .expect("bench settings are valid")
}

async fn build_app(redis_url: Option<&str>, upstream: &str) -> Router {
    let gateway = startup::build_gateway(config(&support::gateway_env(redis_url, upstream)))
        .await
        .expect("gateway builds");
    startup::app(gateway)
}

/// One `/v1/generate` through the router; the status, `x-cache` and the body read whole.
async fn generate(app: &Router, body: Bytes) -> (u16, String, Bytes) {
    let request = Request::post("/v1/generate")
        .header("content-type", "application/json")
        .header("x-api-key", support::GATEWAY_KEY)
        .body(Body::from(body))
        .expect("request");
    let response = app.clone().oneshot(request).await.expect("infallible");
    let status = response.status().as_u16();
    let cache = response
        .headers()
        .get("x-cache")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (status, cache, body)
}

/// Stores the answer for `hit_body` (a miss, or a hit when an earlier app stored it in the same
/// Redis), checks the next call hits; returns its cache key.
async fn seed(app: &Router, hit_body: &Bytes) -> String {
    let (status, cache, body) = generate(app, hit_body.clone()).await;
    assert!(
        status == 200 && (cache == "MISS" || cache == "HIT"),
        "{status} {cache} {body:?}"
    );
    let (status, cache, _) = generate(app, hit_body.clone()).await;
    assert_eq!((status, cache.as_str()), (200, "HIT"));
    let json: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
    json["cache_key"].as_str().expect("cache_key").to_string()
}

/// Bodies that all miss: a new contact each.
fn miss_bodies(counter: &AtomicU64, n: u64) -> Vec<Bytes> {
    let first = counter.fetch_add(n, Ordering::Relaxed);
    (first..first + n)
        .map(|i| Bytes::from(support::generate_body(&format!("Contact {i}"))))
        .collect()
}

fn admission<'a>(stats_key: &'a str, lookup_key: &'a str) -> Admission<'a> {
    Admission {
        stats_key,
        lookup_key: Some(lookup_key),
        lease: None,
        daily_request_limit: 1_000_000_000,
        daily_budget: None,
        stats_ttl_secs: ai_gateway::gateway::STATS_RETENTION_DAYS * 86_400,
    }
}

async fn raw_client(url: &str) -> (fred::clients::Client, String) {
    let config = fred::types::config::Config::from_url(url).expect("url");
    let client = Builder::from_config(config)
        .with_connection_config(|c| {
            c.tcp = fred::types::config::TcpConfig {
                nodelay: Some(true),
                ..Default::default()
            }
        })
        .build()
        .expect("client");
    client.init().await.expect("connect");
    let sha: String = client.script_load("return 1").await.expect("load");
    (client, sha)
}

async fn return_one(client: &fred::clients::Client, sha: &str) {
    let one: i64 = client
        .evalsha(sha, Vec::<Key>::new(), Vec::<Value>::new())
        .await
        .expect("evalsha");
    assert_eq!(one, 1);
}

struct Scenario {
    name: &'static str,
    runtime: &'static str,
    micros: Vec<f64>,
}

/// Times `n` calls of `call` one by one (after 1 000 unmeasured), in microseconds.
async fn time_each<F, Fut>(n: usize, mut call: F) -> Vec<f64>
where
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = ()>,
{
    for i in 0..1_000 {
        call(i).await;
    }
    let mut micros = Vec::with_capacity(n);
    for i in 0..n {
        let started = Instant::now();
        call(1_000 + i).await;
        micros.push(started.elapsed().as_secs_f64() * 1e6);
    }
    micros
}

fn runtime(flavour: &str) -> tokio::runtime::Runtime {
    match flavour {
        "current-thread" => tokio::runtime::Builder::new_current_thread(),
        _ => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(2);
            b
        }
    }
    .enable_all()
    .build()
    .expect("runtime")
}

fn percentile_pass(redis_url: &str, upstream: &str) -> Vec<Scenario> {
    let mut scenarios = Vec::new();
    let hit_body = Bytes::from(support::generate_body("Ada Lovelace"));
    for flavour in ["current-thread", "multi-thread (2 workers)"] {
        let rt = runtime(flavour);
        rt.block_on(async {
            let app = build_app(Some(redis_url), upstream).await;
            let key = seed(&app, &hit_body).await;
            let hits = time_each(SAMPLES, |_| {
                let (app, body) = (&app, hit_body.clone());
                async move {
                    generate(app, body).await;
                }
            })
            .await;
            scenarios.push(Scenario {
                name: "hit, redis: whole request",
                runtime: flavour,
                micros: hits,
            });

            let url = secrecy::SecretString::from(redis_url.to_string());
            let store = RedisStore::connect(&url, None, Duration::from_millis(500))
                .await
                .expect("store");
            let stats_key = cache_key::stats_key("bench", &clock::day_string(clock::utc_today()));
            let admits = time_each(SAMPLES, |_| {
                let (store, stats_key, key) = (&store, &stats_key, &key);
                async move {
                    let admitted = store.admit(&admission(stats_key, key)).await;
                    assert!(matches!(admitted, Ok(Admitted::Hit(_))));
                }
            })
            .await;
            scenarios.push(Scenario {
                name: "floor: the admit script alone (Store::admit)",
                runtime: flavour,
                micros: admits,
            });

            let (client, sha) = raw_client(redis_url).await;
            let ones = time_each(SAMPLES, |_| {
                let (client, sha) = (&client, &sha);
                async move { return_one(client, sha).await }
            })
            .await;
            scenarios.push(Scenario {
                name: "floor: EVALSHA `return 1` (fred)",
                runtime: flavour,
                micros: ones,
            });
        });
    }
    let rt = runtime("current-thread");
    rt.block_on(async {
        let app = build_app(None, upstream).await;
        seed(&app, &hit_body).await;
        let hits = time_each(SAMPLES, |_| {
            let (app, body) = (&app, hit_body.clone());
            async move {
                generate(app, body).await;
            }
        })
        .await;
        scenarios.push(Scenario {
            name: "hit, memory store: whole request",
            runtime: "current-thread",
            micros: hits,
        });
        for (store, url) in [("redis", Some(redis_url)), ("memory", None)] {
            let app = build_app(url, upstream).await;
            let counter = AtomicU64::new(1_000_000_000);
            let bodies = miss_bodies(&counter, SAMPLES as u64 / 4 + 1_000);
            let misses = time_each(SAMPLES / 4, |i| {
                let (app, body) = (&app, bodies[i].clone());
                async move {
                    let (status, cache, _) = generate(app, body).await;
                    debug_assert_eq!((status, cache.as_str()), (200, "MISS"));
                }
            })
            .await;
            scenarios.push(Scenario {
                name: if store == "redis" {
                    "miss, redis: whole request (instant upstream over HTTP)"
                } else {
                    "miss, memory store: whole request (instant upstream over HTTP)"
                },
                runtime: "current-thread",
                micros: misses,
            });
        }
    });
    scenarios
}

fn criterion_estimate(group: &str, id: &str) -> Option<(f64, f64, f64)> {
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    let path = dir.join(format!("criterion/{group}/{id}/new/estimates.json"));
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    let mean = &json["mean"];
    Some((
        mean["point_estimate"].as_f64()? / 1e3,
        mean["confidence_interval"]["lower_bound"].as_f64()? / 1e3,
        mean["confidence_interval"]["upper_bound"].as_f64()? / 1e3,
    ))
}

fn main() {
    // Log as the binary does (JSON, `info`), into a sink: the work counts, the output does not.
    telemetry::init_with_writer(LogFormat::Json, std::io::sink);
    let redis = support::Redis::start();
    let redis_url = redis.url();
    let upstream = support::instant_upstream();

    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(5))
        .configure_from_args();
    let rt = runtime("current-thread");
    let hit_body = Bytes::from(support::generate_body("Ada Lovelace"));
    let counter = Arc::new(AtomicU64::new(0));
    for (store, url) in [("redis", Some(redis_url.as_str())), ("memory", None)] {
        let app = rt.block_on(build_app(url, &upstream));
        rt.block_on(seed(&app, &hit_body));
        c.benchmark_group("hit").bench_function(store, |b| {
            b.to_async(&rt).iter(|| generate(&app, hit_body.clone()))
        });
        c.benchmark_group("miss").bench_function(store, |b| {
            b.to_async(&rt).iter_custom(|iters| {
                let bodies = miss_bodies(&counter, iters);
                let app = app.clone();
                async move {
                    let started = Instant::now();
                    for body in bodies {
                        generate(&app, body).await;
                    }
                    started.elapsed()
                }
            })
        });
    }
    let (client, sha) = rt.block_on(raw_client(&redis_url));
    c.benchmark_group("floor")
        .bench_function("evalsha_return_1", |b| {
            b.to_async(&rt).iter(|| return_one(&client, &sha))
        });
    c.final_summary();
    drop(rt);

    let mut md = String::from(
        "## In-process (criterion + percentile pass)\n\n\
         Command: `cargo bench --bench gateway`. Router via `tower::ServiceExt::oneshot` (no HTTP \
         parsing between caller and gateway), JSON request logs at `info` into a sink, gateway \
         keys on, a daily limit that is checked but never reached; private redis-server on \
         loopback; the miss's upstream is a local HTTP server answering at once.\n\n\
         Criterion (current-thread runtime), mean time per request with its 95 % interval:\n\n\
         | bench | mean µs | 95 % CI µs |\n|---|---:|---|\n",
    );
    for (group, id) in [
        ("hit", "redis"),
        ("hit", "memory"),
        ("miss", "redis"),
        ("miss", "memory"),
        ("floor", "evalsha_return_1"),
    ] {
        if let Some((mean, lo, hi)) = criterion_estimate(group, id) {
            md.push_str(&format!(
                "| {group}/{id} | {mean:.1} | {lo:.1} – {hi:.1} |\n"
            ));
        }
    }
    md.push_str(&format!(
        "\nPercentiles: {SAMPLES} sequential requests each (misses: {}), timed one by one \
         after 1 000 unmeasured:\n\n\
         | scenario | runtime | p50 µs | p90 µs | p99 µs | mean µs |\n|---|---|---:|---:|---:|---:|\n",
        SAMPLES / 4
    ));
    let scenarios = percentile_pass(&redis_url, &upstream);
    for s in &scenarios {
        let mut m = s.micros.clone();
        let mean = m.iter().sum::<f64>() / m.len() as f64;
        md.push_str(&format!(
            "| {} | {} | {:.1} | {:.1} | {:.1} | {:.1} |\n",
            s.name,
            s.runtime,
            support::percentile(&mut m, 50.0),
            support::percentile(&mut m, 90.0),
            support::percentile(&mut m, 99.0),
            mean
        ));
    }
    let find = |name: &str, runtime: &str| {
        scenarios
            .iter()
            .find(|s| s.name.starts_with(name) && s.runtime == runtime)
            .map(|s| s.micros.clone())
    };
    md.push_str("\nAdded by the gateway on a hit (whole request − the admit script alone):\n\n");
    for runtime in ["current-thread", "multi-thread (2 workers)"] {
        if let (Some(mut hit), Some(mut floor)) = (
            find("hit, redis", runtime),
            find("floor: the admit", runtime),
        ) {
            md.push_str(&format!(
                "- {runtime}: p50 +{:.1} µs, p99 +{:.1} µs (budget: p99 added < 100 µs)\n",
                support::percentile(&mut hit, 50.0) - support::percentile(&mut floor, 50.0),
                support::percentile(&mut hit, 99.0) - support::percentile(&mut floor, 99.0),
            ));
        }
    }
    support::write_section("10-in-process", &md);
}
