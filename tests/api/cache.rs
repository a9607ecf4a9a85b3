//! Miss then hit, what the key separates, refresh/bypass, TTLs, and what is never stored.

use serde_json::json;

use crate::support::fake_anthropic::{Reply, Usage};
use crate::{opener, stack};

#[tokio::test]
async fn a_repeated_request_is_answered_from_the_cache_and_says_what_it_saved() {
    let s = stack().await;
    let first = s.gateway.generate(opener("Ada")).await;
    assert_eq!(first.status, 200, "{}", first.text);
    assert_eq!(first.header("x-cache"), Some("MISS"));
    let first = first.json();
    assert_eq!(first["cached"], false);
    assert!(first["cost"].as_f64().unwrap() > 0.0);
    assert_eq!(first["saved"], 0.0);

    let second = s.gateway.generate(opener("Ada")).await;
    assert_eq!(second.header("x-cache"), Some("HIT"));
    let second = second.json();
    assert_eq!(second["cached"], true);
    assert_eq!(second["cost"], 0.0);
    assert_eq!(
        second["saved"], first["cost"],
        "a hit saves what the miss cost"
    );
    assert_eq!(second["response"], first["response"]);
    assert_eq!(second["model"], first["model"]);
    assert_eq!(second["tokens"], first["tokens"]);
    assert_eq!(second["cache_key"], first["cache_key"]);
    assert_eq!(s.fake.calls(), 1, "the hit never reached upstream");
    assert!(first["cache_key"].as_str().unwrap().starts_with("ai:v1:"));
}

#[tokio::test]
async fn the_model_is_part_of_the_key() {
    let s = stack().await;
    let mut haiku = opener("Ada");
    haiku["model"] = json!("claude-haiku-4-5");
    let sonnet = s.gateway.generate(opener("Ada")).await.json();
    let haiku = s.gateway.generate(haiku).await.json();
    assert_eq!(s.fake.calls(), 2);
    assert_eq!(sonnet["model"], "claude-sonnet-4-6");
    assert_eq!(haiku["model"], "claude-haiku-4-5");
    assert_ne!(sonnet["cache_key"], haiku["cache_key"]);
    assert_eq!(s.fake.requests()[1].body["model"], "claude-haiku-4-5");
}

#[tokio::test]
async fn moving_text_across_the_system_prompt_boundary_is_a_different_entry() {
    let s = stack().await;
    let a = s
        .gateway
        .generate(json!({"system": "a:b", "prompt": "c"}))
        .await;
    let b = s
        .gateway
        .generate(json!({"system": "a", "prompt": "b:c"}))
        .await;
    assert_eq!(b.header("x-cache"), Some("MISS"));
    assert_ne!(a.json()["cache_key"], b.json()["cache_key"]);
    assert_eq!(s.fake.calls(), 2);
}

#[tokio::test]
async fn template_and_contact_scope_the_entry_and_are_readable_in_the_key() {
    let s = stack().await;
    let mut ada = opener("someone");
    ada["template_id"] = json!("opener-v2");
    ada["contact_id"] = json!("42");
    let mut bob = ada.clone();
    bob["contact_id"] = json!("43");
    let first = s.gateway.generate(ada.clone()).await.json();
    let key = first["cache_key"].as_str().unwrap().to_string();
    assert!(key.contains(":tpl:opener-v2:ct:42:"), "{key}");
    assert_eq!(
        s.gateway.generate(bob).await.header("x-cache"),
        Some("MISS")
    );
    assert_eq!(s.gateway.generate(ada).await.header("x-cache"), Some("HIT"));
    // A user can find one contact's entries in Redis by pattern.
    let found = s.redis.cmd(&["KEYS", "ai:v1:*:ct:42:*"]).await;
    assert_eq!(found, key);
}

#[tokio::test]
async fn refresh_replaces_the_entry_and_bypass_neither_reads_nor_writes() {
    let s = stack().await;
    s.gateway.generate(opener("Ada")).await;

    s.fake.push(Reply::text("A fresher opener."));
    let mut refresh = opener("Ada");
    refresh["cache"] = json!("refresh");
    let refreshed = s.gateway.generate(refresh).await;
    assert_eq!(refreshed.header("x-cache"), Some("REFRESH"));
    assert_eq!(refreshed.json()["response"], "A fresher opener.");
    let hit = s.gateway.generate(opener("Ada")).await;
    assert_eq!(hit.header("x-cache"), Some("HIT"));
    assert_eq!(
        hit.json()["response"],
        "A fresher opener.",
        "refresh stored the new answer"
    );

    let mut bypass = opener("Bob");
    bypass["cache"] = json!("bypass");
    let bypassed = s.gateway.generate(bypass).await;
    assert_eq!(bypassed.header("x-cache"), Some("BYPASS"));
    assert_eq!(bypassed.json()["cached"], false);
    assert_eq!(
        s.gateway.generate(opener("Bob")).await.header("x-cache"),
        Some("MISS"),
        "bypass stored nothing"
    );
    let mut bypass_again = opener("Ada");
    bypass_again["cache"] = json!("bypass");
    assert_eq!(
        s.gateway.generate(bypass_again).await.header("x-cache"),
        Some("BYPASS"),
        "bypass did not read the cached entry"
    );
    assert_eq!(s.fake.calls(), 5);
}

#[tokio::test]
async fn entries_expire_after_their_ttl() {
    let s = stack().await;
    let mut short = opener("Ada");
    short["ttl_secs"] = json!(1);
    let first = s.gateway.generate(short.clone()).await.json();
    let key = first["cache_key"].as_str().unwrap().to_string();
    let ttl: i64 = s.redis.cmd(&["TTL", &key]).await.parse().unwrap();
    assert!((0..=1).contains(&ttl), "TTL {ttl}");
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert_eq!(
        s.gateway.generate(short).await.header("x-cache"),
        Some("MISS")
    );
    assert_eq!(s.fake.calls(), 2);

    // Without ttl_secs the entry lives CACHE_TTL_SECS (default one day).
    let default = s.gateway.generate(opener("Bob")).await.json();
    let ttl: i64 = s
        .redis
        .cmd(&["TTL", default["cache_key"].as_str().unwrap()])
        .await
        .parse()
        .unwrap();
    assert!((86_390..=86_400).contains(&ttl), "TTL {ttl}");
}

#[tokio::test]
async fn truncated_answers_are_returned_but_not_stored() {
    let s = stack().await;
    let mut tiny = opener("Ada");
    tiny["max_tokens"] = json!(3);
    let first = s.gateway.generate(tiny.clone()).await;
    assert_eq!(first.status, 200);
    assert_eq!(first.json()["stop_reason"], "max_tokens");
    let second = s.gateway.generate(tiny).await;
    assert_eq!(second.header("x-cache"), Some("MISS"));
    assert_eq!(s.fake.calls(), 2);
}

#[tokio::test]
async fn failed_calls_are_not_stored_and_the_next_one_reaches_upstream() {
    let s = stack_with_no_retries().await;
    s.fake.push(Reply::overloaded());
    let failed = s.gateway.generate(opener("Ada")).await;
    assert_eq!(failed.status, 503, "{}", failed.text);
    let ok = s.gateway.generate(opener("Ada")).await;
    assert_eq!(ok.status, 200);
    assert_eq!(ok.header("x-cache"), Some("MISS"));
    assert_eq!(s.fake.calls(), 2);
    assert_eq!(s.redis.cmd(&["KEYS", "ai:v1:*"]).await.lines().count(), 1);
}

async fn stack_with_no_retries() -> crate::Stack {
    crate::stack_with(|b| b.env("UPSTREAM_MAX_RETRIES", "0")).await
}

/// Each model tier, priced by hand from its per-million prices (input, output, 5-minute cache
/// write = 1.25 × input, cache read = 0.1 × input).
#[tokio::test]
async fn costs_match_hand_computed_figures_to_the_micro_dollar() {
    let s = stack().await;
    let usage = Usage {
        input_tokens: 1_000,
        output_tokens: 500,
        cache_creation_input_tokens: 2_000,
        cache_read_input_tokens: 4_000,
    };
    let cases = [
        // 1000×3 + 500×15 + 2000×3.75 + 4000×0.30 = 3000 + 7500 + 7500 + 1200
        ("claude-sonnet-4-6", 0.0192),
        // 1000×1 + 500×5 + 2000×1.25 + 4000×0.10 = 1000 + 2500 + 2500 + 400
        ("claude-haiku-4-5-20251001", 0.0064),
        // 1000×5 + 500×25 + 2000×6.25 + 4000×0.50 = 5000 + 12500 + 12500 + 2000
        ("claude-opus-4-5", 0.032),
        // 1000×15 + 500×75 + 2000×18.75 + 4000×1.50 = 15000 + 37500 + 37500 + 6000
        ("claude-opus-4-1", 0.096),
    ];
    for (i, (model, expected)) in cases.iter().enumerate() {
        s.fake.push(Reply::Text {
            text: "ok".into(),
            stop_reason: "end_turn".into(),
            usage: usage.clone(),
        });
        let r = s
            .gateway
            .generate(json!({"prompt": format!("case {i}"), "model": model}))
            .await
            .json();
        assert_eq!(r["cost"].as_f64().unwrap(), *expected, "{model}: {r}");
        assert_eq!(
            r["tokens"],
            json!({"input": 1000, "output": 500, "cache_creation": 2000, "cache_read": 4000})
        );
    }
    let stats = s.gateway.get("/v1/stats").await.json();
    assert_eq!(stats["cost_usd"].as_f64().unwrap(), 0.1536);
}

#[tokio::test]
async fn an_unknown_model_has_a_null_cost_not_an_invented_one() {
    let s = stack().await;
    let r = s
        .gateway
        .generate(json!({"prompt": "hi", "model": "claude-future-9"}))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["cost"], serde_json::Value::Null);
    assert!(s.gateway.logs().contains("no price is known"));
}

#[tokio::test]
async fn stats_count_hits_misses_money_and_tokens() {
    let s = stack().await;
    let miss = s.gateway.generate(opener("Ada")).await.json();
    s.gateway.generate(opener("Ada")).await;
    s.gateway.generate(opener("Ada")).await;
    let stats = s.gateway.get("/v1/stats").await;
    assert_eq!(stats.status, 200);
    let stats = stats.json();
    assert_eq!(stats["requests"], 3);
    assert_eq!(stats["hits"], 2);
    assert_eq!(stats["misses"], 1);
    assert_eq!(stats["upstream_calls"], 1);
    assert_eq!(stats["hit_rate"].as_f64().unwrap(), 0.6667);
    assert_eq!(stats["cost_usd"], miss["cost"]);
    let saved = stats["saved_usd"].as_f64().unwrap();
    let twice = miss["cost"].as_f64().unwrap() * 2.0;
    assert!((saved - twice).abs() < 1e-9, "{saved} vs {twice}");
    assert_eq!(stats["tokens"]["input"], miss["tokens"]["input"]);

    let other_day = s.gateway.get("/v1/stats?date=2020-01-01").await.json();
    assert_eq!(other_day["requests"], 0);
    assert_eq!(other_day["date"], "2020-01-01");
}

#[tokio::test]
async fn the_upstream_request_carries_the_key_version_and_the_callers_fields() {
    let s = stack().await;
    s.gateway
        .generate(
            json!({"system": "Be brief.", "prompt": "Hi", "max_tokens": 50, "temperature": 0.2}),
        )
        .await;
    let sent = &s.fake.requests()[0];
    assert_eq!(sent.header("anthropic-version"), Some("2023-06-01"));
    assert!(sent.header("x-api-key").is_some());
    assert_eq!(sent.body["system"], "Be brief.");
    assert_eq!(sent.body["max_tokens"], 50);
    assert_eq!(sent.body["temperature"], 0.2);
    assert_eq!(
        sent.body["messages"],
        json!([{"role": "user", "content": "Hi"}])
    );
}
