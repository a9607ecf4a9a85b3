//! The official `anthropic` Python SDK (pinned in tests/python/requirements.txt) against the
//! gateway in front of the fake Messages API, set up as a user would: only the base URL and the
//! key change. The scenarios live in tests/python/sdk_scenarios.py.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::{Value, json};

use super::{GATEWAY_KEY, messages_stack};
use crate::support::fake_anthropic::Reply;
use crate::support::gateway::Gateway;

const PYTHON_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python");

/// The venv's python, with the SDK installed. Made once (tests running in parallel wait for
/// the first), and again only when requirements.txt changes.
fn python() -> PathBuf {
    static PYTHON: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    PYTHON
        .get_or_init(prepare_venv)
        .clone()
        .unwrap_or_else(|e| panic!("{e}"))
}

fn prepare_venv() -> Result<PathBuf, String> {
    // target/pyenv, beside the build (CARGO_TARGET_TMPDIR is target/tmp).
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .ok_or("no target directory")?
        .join("pyenv");
    let requirements_file = format!("{PYTHON_DIR}/requirements.txt");
    let requirements = std::fs::read_to_string(&requirements_file)
        .map_err(|e| format!("{requirements_file}: {e}"))?;
    let python = venv.join("bin").join("python");
    let marker = venv.join("installed-requirements.txt");
    if python.exists() && std::fs::read_to_string(&marker).ok() == Some(requirements.clone()) {
        return Ok(python);
    }
    run(
        Command::new("python3").arg("-m").arg("venv").arg(&venv),
        "python3 -m venv (on Debian it needs package python3-venv; scripts/test.sh installs it)",
    )?;
    run(
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .arg("-r")
            .arg(&requirements_file),
        "pip install -r tests/python/requirements.txt",
    )?;
    std::fs::write(&marker, requirements).map_err(|e| format!("{}: {e}", marker.display()))?;
    Ok(python)
}

fn run(command: &mut Command, what: &str) -> Result<(), String> {
    let output = command
        .output()
        .map_err(|e| format!("{what}: cannot run: {e}"))?;
    if output.status.success() {
        return Ok(());
    }
    Err(format!(
        "{what} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    ))
}

/// Runs one scenario of sdk_scenarios.py against `gateway`; its last line of output, as JSON.
async fn scenario(gateway: &Gateway, name: &str) -> Value {
    let python = tokio::task::spawn_blocking(python).await.unwrap();
    let mut command = tokio::process::Command::new(python);
    command
        .arg(format!("{PYTHON_DIR}/sdk_scenarios.py"))
        .arg(name)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("GATEWAY_URL", &gateway.url)
        .env("GATEWAY_KEY", GATEWAY_KEY)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        // The gateway is on 127.0.0.1: never through a proxy.
        .env("NO_PROXY", "*")
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(120), command.output())
        .await
        .unwrap_or_else(|_| panic!("scenario {name} did not finish"))
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "scenario {name} failed ({}):\n{stdout}{}\n--- gateway:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr),
        gateway.logs()
    );
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("scenario {name} printed {last:?}: {e}"))
}

#[tokio::test]
async fn sdk_messages_create_twice_answers_the_second_from_the_cache() {
    let s = messages_stack(|b| b).await;
    let out = scenario(&s.gateway, "create").await;
    let calls = out["calls"].as_array().unwrap();
    assert_eq!(calls[0]["x_cache"], "MISS", "{out}");
    let cost: f64 = calls[0]["cost"].as_str().unwrap().parse().unwrap();
    assert!(cost > 0.0, "{out}");
    assert_eq!(calls[1]["x_cache"], "HIT", "{out}");
    assert_eq!(calls[1]["cost"], "0");
    assert_eq!(
        calls[0]["id"], calls[1]["id"],
        "the stored message, unchanged"
    );
    assert_eq!(calls[0]["text"], "Echo: Why cache LLM answers?");
    assert_eq!(s.fake.calls(), 1);
    // What the SDK sent reached Claude untouched: the breakpoint is still there.
    let sent = &s.fake.requests()[0].body;
    assert_eq!(
        sent["system"][0]["cache_control"],
        json!({"type": "ephemeral"})
    );
    assert_eq!(sent["metadata"]["user_id"], "sdk-test");
}

#[tokio::test]
async fn sdk_streaming_is_relayed_on_a_miss_and_replayed_on_a_hit() {
    let s = messages_stack(|b| b).await;
    let out = scenario(&s.gateway, "stream").await;
    let runs = out["runs"].as_array().unwrap();
    assert_eq!(runs[0]["x_cache"], "MISS", "{out}");
    assert_eq!(
        runs[0]["cost"],
        Value::Null,
        "a streamed miss's cost is logged at its end"
    );
    assert_eq!(runs[0]["pieces"], 3, "relayed as the fake streamed it");
    assert_eq!(runs[1]["x_cache"], "HIT", "{out}");
    assert_eq!(runs[1]["cost"], "0");
    for run in runs {
        assert_eq!(run["text"], "Echo: Stream me a short answer.");
        assert_eq!(run["stop_reason"], "end_turn");
        assert_eq!(run["output_tokens"], runs[0]["output_tokens"]);
        assert_eq!(run["input_tokens"], runs[0]["input_tokens"]);
    }
    assert_eq!(
        out["events"],
        json!([
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]),
        "a hit replays a valid event sequence"
    );
    assert_eq!(out["whole_x_cache"], "HIT");
    assert_eq!(s.fake.calls(), 1);
}

#[tokio::test]
async fn sdk_tool_use_is_cached_whole_and_streamed() {
    let s = messages_stack(|b| b).await;
    s.fake
        .push(Reply::tool_use("get_weather", json!({"city": "Paris"})));
    let out = scenario(&s.gateway, "tools").await;
    let calls = out["calls"].as_array().unwrap();
    let caches: Vec<&str> = calls
        .iter()
        .map(|c| c["x_cache"].as_str().unwrap())
        .collect();
    assert_eq!(caches, ["MISS", "HIT", "HIT"], "{out}");
    for call in calls {
        assert_eq!(call["name"], "get_weather");
        assert_eq!(call["input"], json!({"city": "Paris"}));
        assert_eq!(call["id"], calls[0]["id"]);
    }
    assert_eq!(s.fake.calls(), 1);
    assert!(s.fake.requests()[0].body["tools"][0]["input_schema"].is_object());
}

#[tokio::test]
async fn sdk_errors_arrive_as_the_sdks_exception_classes() {
    let s = messages_stack(|b| b.env("UPSTREAM_MAX_RETRIES", "0")).await;
    s.fake.push(Reply::rate_limited(3));
    let out = scenario(&s.gateway, "errors").await;
    assert_eq!(
        out["rate_limit"],
        json!({"status": 429, "type": "rate_limit_error", "retry_after": "3"})
    );
    assert_eq!(
        out["auth"],
        json!({"status": 401, "type": "authentication_error"})
    );
    assert_eq!(
        out["bad_request"],
        json!({"status": 400, "type": "invalid_request_error"})
    );
    assert_eq!(
        s.fake.calls(),
        1,
        "only the rate-limited call reached Claude"
    );
}
