//! Coalescing, prompt caching, routing, and the multi-day savings report.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::fake_anthropic::{FakeAnthropic, Reply};
use crate::support::gateway::Gateway;
use crate::support::redis::RedisServer;
use crate::{opener, stack, stack_with};

#[tokio::test]
async fn fifty_identical_requests_over_four_processes_make_one_upstream_call() {
    let redis = RedisServer::start().await;
    let fake = FakeAnthropic::start().await;
    fake.set_latency(Duration::from_millis(800));
    let mut gateways = Vec::new();
    for _ in 0..4 {
        gateways.push(
            Gateway::builder()
                .redis(&redis)
                .upstream(&fake)
                .spawn()
                .await,
        );
    }
    let requests = (0..50).map(|i| gateways[i % 4].generate(opener("everyone at Acme")));
    let replies = futures_util::future::join_all(requests).await;
    assert_eq!(fake.calls(), 1, "exactly one upstream call");
    let first_text = replies[0].json()["response"].clone();
    let mut outcomes = std::collections::HashMap::<String, usize>::new();
    for r in &replies {
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.json()["response"], first_text, "all get the same text");
        *outcomes
            .entry(r.header("x-cache").unwrap().to_string())
            .or_default() += 1;
    }
    assert_eq!(outcomes.get("MISS"), Some(&1), "{outcomes:?}");
    assert!(
        outcomes.get("COALESCED").copied().unwrap_or(0) >= 1,
        "{outcomes:?}"
    );
    for r in replies
        .iter()
        .filter(|r| r.header("x-cache") == Some("COALESCED"))
    {
        let body = r.json();
        assert_eq!(body["cost"], 0.0);
        assert!(body["saved"].as_f64().unwrap() > 0.0);
    }
    let stats = gateways[0].get("/v1/stats").await.json();
    assert_eq!(stats["requests"], 50);
    assert_eq!(stats["upstream_calls"], 1);
    assert_eq!(stats["misses"], 1);
    assert_eq!(
        stats["coalesced"].as_u64().unwrap() + stats["hits"].as_u64().unwrap(),
        49
    );
}

#[tokio::test]
async fn when_the_leader_fails_a_waiter_takes_over_and_no_error_is_cached() {
    let redis = RedisServer::start().await;
    let fake = FakeAnthropic::start().await;
    fake.set_latency(Duration::from_millis(400));
    fake.push(Reply::server_error());
    let spawn = || {
        Gateway::builder()
            .redis(&redis)
            .upstream(&fake)
            .env("UPSTREAM_MAX_RETRIES", "0")
            .spawn()
    };
    let (a, b) = (spawn().await, spawn().await);
    let started = Instant::now();
    let requests = (0..10).map(|i| if i % 2 == 0 { &a } else { &b }.generate(opener("Ada")));
    let replies = futures_util::future::join_all(requests).await;
    let failed = replies.iter().filter(|r| r.status == 502).count();
    let ok: Vec<_> = replies.iter().filter(|r| r.status == 200).collect();
    assert_eq!(failed, 1, "only the failed leader's caller sees the error");
    assert_eq!(ok.len(), 9);
    assert_eq!(
        fake.calls(),
        2,
        "one waiter took over; the rest waited for it"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "no one waited out the deadline"
    );
    let texts: std::collections::HashSet<_> = ok
        .iter()
        .map(|r| r.json()["response"].to_string())
        .collect();
    assert_eq!(texts.len(), 1);
}

#[tokio::test]
async fn when_the_leader_process_dies_its_lease_lapses_and_a_waiter_takes_over() {
    let redis = RedisServer::start().await;
    let fake = FakeAnthropic::start().await;
    fake.set_latency(Duration::from_millis(1500));
    let doomed = Gateway::builder()
        .redis(&redis)
        .upstream(&fake)
        .spawn()
        .await;
    let survivor = Gateway::builder()
        .redis(&redis)
        .upstream(&fake)
        .spawn()
        .await;
    let leader_url = doomed.url.clone();
    let leader = tokio::spawn(async move {
        reqwest::Client::new()
            .post(format!("{leader_url}/v1/generate"))
            .json(&opener("Ada"))
            .send()
            .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let waiters = futures_util::future::join_all((0..3).map(|_| survivor.generate(opener("Ada"))));
    let kill = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        doomed.stop().await;
    };
    let (replies, ()) = tokio::join!(waiters, kill);
    assert!(
        leader.await.unwrap().is_err(),
        "the leader's caller lost its connection"
    );
    for r in &replies {
        assert_eq!(r.status, 200, "{}", r.text);
    }
    assert_eq!(
        fake.calls(),
        2,
        "one waiter took over after the lease lapsed"
    );
}

#[tokio::test]
async fn the_memory_store_coalesces_inside_one_process() {
    let fake = FakeAnthropic::start().await;
    fake.set_latency(Duration::from_millis(500));
    let gateway = Gateway::builder().upstream(&fake).spawn().await;
    let replies =
        futures_util::future::join_all((0..20).map(|_| gateway.generate(opener("Ada")))).await;
    assert!(replies.iter().all(|r| r.status == 200));
    assert_eq!(fake.calls(), 1);
}

/// The system prompt is long enough for every model tier's cache minimum (the largest, 4096).
fn long_system() -> String {
    "You write cold email openers for B2B sales. Keep them short and specific. ".repeat(300)
}

/// Cost by hand, in micro-dollars, from per-million prices (input, output, write, read).
fn hand_cost(tokens: &serde_json::Value, prices: (f64, f64, f64, f64)) -> f64 {
    let t = |k: &str| tokens[k].as_f64().unwrap();
    let micros = t("input") * prices.0
        + t("output") * prices.1
        + t("cache_creation") * prices.2
        + t("cache_read") * prices.3;
    micros.round() / 1_000_000.0
}

#[tokio::test]
async fn prompt_caching_writes_then_reads_and_is_priced_per_tier() {
    let s = stack().await;
    // (model, input, output, 5-minute write, read) in USD per million tokens.
    let tiers = [
        ("claude-sonnet-4-6", (3.0, 15.0, 3.75, 0.30)),
        ("claude-haiku-4-5", (1.0, 5.0, 1.25, 0.10)),
        ("claude-opus-4-1", (15.0, 75.0, 18.75, 1.50)),
        ("claude-3-haiku-20240307", (0.25, 1.25, 0.30, 0.03)),
    ];
    for (model, prices) in tiers {
        let ask = |contact: &str| json!({"system": long_system(), "prompt": format!("Opener for {contact}"), "model": model});
        let first = s.gateway.generate(ask("Ada")).await.json();
        assert_eq!(first["prompt_cache"], "write", "{model}: {first}");
        assert!(first["tokens"]["cache_creation"].as_u64().unwrap() > 1000);
        assert_eq!(
            first["cost"].as_f64().unwrap(),
            hand_cost(&first["tokens"], prices),
            "{model}"
        );

        let second = s.gateway.generate(ask("Bob")).await.json();
        assert_eq!(second["prompt_cache"], "read", "{model}: {second}");
        assert_eq!(second["tokens"]["cache_creation"], 0);
        assert_eq!(
            second["tokens"]["cache_read"],
            first["tokens"]["cache_creation"]
        );
        assert_eq!(
            second["cost"].as_f64().unwrap(),
            hand_cost(&second["tokens"], prices),
            "{model}"
        );
        assert!(
            second["cost"].as_f64() < first["cost"].as_f64(),
            "reading is cheaper"
        );
    }
    let sent = &s.fake.requests()[0].body;
    assert_eq!(
        sent["system"][0]["cache_control"],
        json!({"type": "ephemeral"})
    );
}

#[tokio::test]
async fn a_short_system_prompt_gets_no_breakpoint_and_says_too_short() {
    let s = stack().await;
    let r = s.gateway.generate(opener("Ada")).await.json();
    assert_eq!(r["prompt_cache"], "too_short");
    assert!(
        s.fake.requests()[0].body["system"].is_string(),
        "sent as plain text"
    );
    // Between Sonnet's minimum and Haiku 4.5's: cached on one, too short on the other.
    let medium = "Write openers. ".repeat(500);
    let sonnet = s
        .gateway
        .generate(json!({"system": medium, "prompt": "x"}))
        .await
        .json();
    assert_eq!(sonnet["prompt_cache"], "write");
    let haiku = s
        .gateway
        .generate(json!({"system": medium, "prompt": "x", "model": "claude-haiku-4-5"}))
        .await
        .json();
    assert_eq!(haiku["prompt_cache"], "too_short");
}

#[tokio::test]
async fn prompt_caching_can_be_turned_off_and_set_to_one_hour() {
    let off = stack_with(|b| b.env("PROMPT_CACHE", "off")).await;
    let r = off
        .gateway
        .generate(json!({"system": long_system(), "prompt": "x"}))
        .await
        .json();
    assert_eq!(r["prompt_cache"], "off");
    assert!(off.fake.requests()[0].body["system"].is_string());

    let s = stack_with(|b| b.env("PROMPT_CACHE_TTL", "1h")).await;
    let per_request = s
        .gateway
        .generate(json!({"system": long_system(), "prompt": "x", "prompt_cache": false}))
        .await
        .json();
    assert_eq!(per_request["prompt_cache"], "off");
    let r = s
        .gateway
        .generate(json!({"system": long_system(), "prompt": "y"}))
        .await
        .json();
    assert_eq!(
        s.fake.requests()[1].body["system"][0]["cache_control"]["ttl"],
        "1h"
    );
    // A one-hour write costs twice the input price: Sonnet $6 per million.
    assert_eq!(
        r["cost"].as_f64().unwrap(),
        hand_cost(&r["tokens"], (3.0, 15.0, 6.0, 0.30))
    );
}

#[tokio::test]
async fn auto_routes_by_prompt_length_and_keys_on_the_resolved_model() {
    let s = stack().await;
    let short = s
        .gateway
        .generate(json!({"prompt": "Opener for Ada", "model": "auto"}))
        .await;
    let short = short.json();
    assert_eq!(short["model"], "claude-haiku-4-5");
    assert_eq!(short["routed"], true);
    assert_eq!(s.fake.requests()[0].body["model"], "claude-haiku-4-5");
    let long_prompt = "Tell me about the company and its market. ".repeat(20);
    let long = s
        .gateway
        .generate(json!({"prompt": long_prompt, "model": "auto"}))
        .await
        .json();
    assert_eq!(long["model"], "claude-sonnet-4-6");
    // The key holds the resolved model: asking Haiku by name finds the routed answer.
    let named = s
        .gateway
        .generate(json!({"prompt": "Opener for Ada", "model": "claude-haiku-4-5"}))
        .await;
    assert_eq!(named.header("x-cache"), Some("HIT"));
    assert_eq!(named.json()["routed"], false);

    let custom = stack_with(|b| {
        b.env(
            "ROUTING_RULES",
            r#"[{"max_words":3,"model":"claude-3-haiku-20240307"},{"model":"claude-opus-4-1"}]"#,
        )
    })
    .await;
    let r = custom
        .gateway
        .generate(json!({"prompt": "hi there", "model": "auto"}))
        .await;
    assert_eq!(r.json()["model"], "claude-3-haiku-20240307");
    let r = custom
        .gateway
        .generate(json!({"prompt": "one two three four", "model": "auto"}))
        .await;
    assert_eq!(r.json()["model"], "claude-opus-4-1");
}

#[tokio::test]
async fn stats_over_several_days_report_each_day_and_the_total() {
    let s = stack().await;
    s.gateway.generate(opener("Ada")).await;
    s.gateway.generate(opener("Ada")).await;
    // Seed yesterday directly, as an earlier day's traffic would have left it.
    let yesterday = (chrono::Utc::now().date_naive() - chrono::Duration::days(1))
        .format("%Y-%m-%d")
        .to_string();
    let key = format!("ai:stats:{{anonymous}}:{yesterday}");
    s.redis
        .cmd(&[
            "HSET",
            &key,
            "requests",
            "10",
            "hits",
            "6",
            "misses",
            "4",
            "cost_micros",
            "4000",
            "saved_micros",
            "6000",
        ])
        .await;
    let report = s.gateway.get("/v1/stats?days=3").await;
    assert_eq!(report.status, 200, "{}", report.text);
    let report = report.json();
    let days = report["days"].as_array().unwrap();
    assert_eq!(days.len(), 3);
    assert_eq!(days[1]["date"], yesterday.as_str());
    assert_eq!(days[1]["hit_rate"], 0.6);
    assert_eq!(days[1]["cost_usd"], 0.004);
    assert_eq!(days[2]["requests"], 2);
    assert_eq!(days[0]["requests"], 0);
    assert_eq!(report["total"]["requests"], 12);
    assert_eq!(report["total"]["hits"], 7);
    assert_eq!(report["tenant"], "anonymous");
    assert_eq!(s.gateway.get("/v1/stats?days=0").await.status, 400);
    assert_eq!(s.gateway.get("/v1/stats?days=1000").await.status, 400);
}
