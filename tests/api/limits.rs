//! The daily request limit: atomic in Redis, shared by every gateway process.

use serde_json::json;

use crate::support::fake_anthropic::FakeAnthropic;
use crate::support::gateway::Gateway;
use crate::support::redis::RedisServer;

#[tokio::test]
async fn the_limit_holds_across_two_gateway_processes_sharing_redis() {
    let redis = RedisServer::start().await;
    let fake = FakeAnthropic::start().await;
    let spawn = || {
        Gateway::builder()
            .redis(&redis)
            .upstream(&fake)
            .env("DAILY_REQUEST_LIMIT", "7")
            .spawn()
    };
    let (a, b) = (spawn().await, spawn().await);
    let requests = (0..20).map(|i| {
        let gateway = if i % 2 == 0 { &a } else { &b };
        gateway.generate(json!({"prompt": format!("contact {}", i % 5)}))
    });
    let replies = futures_util::future::join_all(requests).await;
    let ok = replies.iter().filter(|r| r.status == 200).count();
    let limited: Vec<_> = replies.iter().filter(|r| r.status == 429).collect();
    assert_eq!(ok, 7, "exactly the limit got through");
    assert_eq!(limited.len(), 13);
    for r in limited {
        assert_eq!(r.json()["code"], "rate_limited");
        let retry_after: u64 = r.header("retry-after").unwrap().parse().unwrap();
        assert!(
            (1..=86_400).contains(&retry_after),
            "seconds to UTC midnight"
        );
    }
    let stats = a.get("/v1/stats").await.json();
    assert_eq!(stats["requests"], 7);
    assert_eq!(stats["rate_limited"], 13);
    // The day's counters expire by themselves (no INCR-then-EXPIRE re-arming).
    let keys = redis.cmd(&["KEYS", "ai:stats:*"]).await;
    let ttl: i64 = redis
        .cmd(&["TTL", keys.lines().next().unwrap()])
        .await
        .parse()
        .unwrap();
    assert!(ttl > 0);
}

#[tokio::test]
async fn a_limit_of_zero_means_no_limit() {
    let s = crate::stack_with(|b| b.env("DAILY_REQUEST_LIMIT", "0")).await;
    for i in 0..5 {
        assert_eq!(
            s.gateway
                .generate(json!({"prompt": format!("{i}")}))
                .await
                .status,
            200
        );
    }
}
