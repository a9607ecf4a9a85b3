//! The dashboard as a person sees it: the real page in headless Chromium, under the gateway's
//! own CSP, drawing 14 days of counters seeded into Redis.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::support::gateway::Gateway;
use crate::support::redis::RedisServer;
use crate::{seed_counters, utc_day};

const CHROMIUM: &str = "/usr/bin/chromium";
const SECRET: &str = "acme-dashboard-key-5f2b91c4";
/// The page asks for `/v1/stats?days=14`.
const DAYS: i64 = 14;
const CHROMIUM_TIMEOUT: Duration = Duration::from_secs(120);

/// Runs headless Chromium on `url` with `args` (`--dump-dom`, or `--screenshot=...`); returns
/// its stdout and its log (where the page's console messages, CSP violations included, go).
/// Virtual time lets the page's fetch and drawing finish before the dump.
async fn chromium(args: &[&str], url: &str) -> (String, String) {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: this test needs headless Chromium (apt-get install chromium; scripts/test.sh installs it)"
    );
    let profile = tempfile::tempdir().unwrap();
    let output = tokio::time::timeout(
        CHROMIUM_TIMEOUT,
        tokio::process::Command::new(CHROMIUM)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--virtual-time-budget=5000",
                "--enable-logging=stderr",
                "--log-level=0",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(args)
            .arg(url)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("chromium finishes in time")
    .expect("chromium runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        output.status.success(),
        "chromium failed ({}):\n{stderr}",
        output.status
    );
    (stdout, stderr)
}

/// The markup of `<svg id="ID">…</svg>` in a dumped DOM.
fn svg<'a>(dom: &'a str, id: &str) -> &'a str {
    let start = dom
        .find(&format!("<svg id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id} in the page:\n{dom}"));
    let end = dom[start..].find("</svg>").expect("the svg is closed");
    &dom[start..start + end]
}

fn count(haystack: &str, needle: &str) -> usize {
    haystack.matches(needle).count()
}

#[tokio::test]
async fn the_dashboard_draws_fourteen_days_of_stats_in_headless_chromium() {
    let redis = RedisServer::start().await;
    for days_ago in 0..DAYS {
        let requests = 40 + 10 * days_ago as u64;
        let hits = requests / 2 + days_ago as u64;
        seed_counters(
            &redis,
            "acme",
            &utc_day(days_ago),
            &[
                ("requests", requests),
                ("hits", hits),
                ("misses", requests - hits),
                ("upstream_calls", requests - hits),
                ("cost_micros", 12_000 * (requests - hits)),
                ("saved_micros", 12_000 * hits),
            ],
        )
        .await;
    }
    let gateway = Gateway::builder()
        .redis(&redis)
        .env("GATEWAY_API_KEYS", format!("acme:{SECRET}"))
        .spawn()
        .await;

    let page = gateway.get("/dashboard").await;
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let csp = page.header("content-security-policy").unwrap();
    assert!(csp.starts_with("default-src 'none';"), "{csp}");
    assert!(csp.contains("connect-src 'self'"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(page.header("cache-control"), Some("no-store"));
    assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(page.header("referrer-policy"), Some("no-referrer"));
    assert!(page.text.contains("id=\"chart-requests\""));

    let url = format!("{}/dashboard?key={SECRET}", gateway.url);
    let (dom, browser_log) = chromium(&["--dump-dom"], &url).await;
    let console: Vec<&str> = browser_log
        .lines()
        .filter(|l| l.contains(":CONSOLE"))
        .collect();
    assert!(
        !console
            .iter()
            .any(|l| l.contains("Content Security Policy")),
        "the page breaks its own CSP:\n{}",
        console.join("\n")
    );
    assert!(
        dom.contains("data-state=\"loaded\""),
        "the page did not load the stats under its CSP:\n{dom}"
    );
    assert!(!dom.contains(SECRET), "the key does not end up in the page");
    let requests = svg(&dom, "chart-requests");
    let cost = svg(&dom, "chart-cost");
    // Per day: a requests bar and a hit-rate dot; a cost bar and a saved bar.
    assert_eq!(count(requests, "class=\"datum "), 2 * DAYS as usize);
    assert_eq!(count(requests, "data-series=\"requests\""), DAYS as usize);
    assert_eq!(count(requests, "data-series=\"hit_rate\""), DAYS as usize);
    assert_eq!(count(cost, "class=\"datum "), 2 * DAYS as usize);
    assert_eq!(count(cost, "data-series=\"cost\""), DAYS as usize);
    assert_eq!(count(cost, "data-series=\"saved\""), DAYS as usize);
    for (days_ago, value) in [(0, 40), (DAYS - 1, 40 + 10 * (DAYS - 1))] {
        let bar = format!(
            "data-series=\"requests\" data-date=\"{}\" data-value=\"{value}\"",
            utc_day(days_ago)
        );
        assert!(requests.contains(&bar), "no {bar} in:\n{requests}");
    }
    let stats_calls: Vec<_> = gateway
        .request_logs()
        .into_iter()
        .filter(|l| l["route"] == "/v1/stats")
        .collect();
    assert!(
        stats_calls
            .iter()
            .all(|l| l["status"] == 200 && l["tenant"] == "acme"),
        "{stats_calls:#?}"
    );

    let artifacts = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/test-artifacts"));
    std::fs::create_dir_all(&artifacts).unwrap();
    let screenshot = artifacts.join("dashboard.png");
    let _ = std::fs::remove_file(&screenshot);
    chromium(
        &[
            &format!("--screenshot={}", screenshot.display()),
            "--window-size=1280,900",
        ],
        &url,
    )
    .await;
    let png = std::fs::read(&screenshot).expect("chromium wrote the screenshot");
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    assert!(png.len() > 20_000, "a page with charts, not a blank one");
}
