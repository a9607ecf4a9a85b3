//! Builds the gateway from settings — the same way for the binary, tests and benchmarks — and
//! serves it locally or under Lambda.

use std::sync::Arc;

use axum::Router;
use tokio::net::TcpListener;

use crate::config::{Config, Runtime};
use crate::gateway::Gateway;
use crate::pricing::Pricing;
use crate::store::{MemoryStore, RedisStore, Store};
use crate::upstream::{AnthropicUpstream, MockUpstream, Upstream, anthropic::RetryPolicy};
use crate::{lambda, routes};

/// Clients (Redis, HTTP) are built here once and reused by every request and invocation.
pub async fn build_gateway(config: Config) -> Result<Arc<Gateway>, String> {
    let pricing = Pricing::load(config.pricing_file.as_deref())?;

    let store: Arc<dyn Store> = match &config.redis {
        Some(redis) => Arc::new(
            RedisStore::connect(&redis.url, redis.ca_file.as_deref(), config.redis_timeout).await?,
        ),
        None => {
            tracing::warn!(
                max_entries = config.memory_cache_max_entries,
                "REDIS_URL is not set: using the in-memory store; cache, limits and stats are per process and lost on restart"
            );
            Arc::new(MemoryStore::new(config.memory_cache_max_entries))
        }
    };

    let upstream: Arc<dyn Upstream> = match &config.anthropic_api_key {
        Some(key) if !config.mock_upstream => Arc::new(AnthropicUpstream::new(
            &config.anthropic_base_url,
            key,
            RetryPolicy {
                max_retries: config.upstream_max_retries,
                attempt_timeout: config.upstream_timeout,
                deadline: config.request_deadline,
                base_delay: std::time::Duration::from_millis(500),
            },
        )?),
        _ => {
            tracing::warn!(
                "answering from the offline mock (ANTHROPIC_API_KEY unset or MOCK_UPSTREAM=true); responses carry x-upstream: mock"
            );
            Arc::new(MockUpstream)
        }
    };
    if config.prompt_cache {
        let minimum = pricing
            .lookup(&config.default_model)
            .and_then(|p| p.min_cacheable_tokens)
            .unwrap_or(1024);
        tracing::info!(
            model = %config.default_model,
            min_tokens = minimum,
            "prompt caching is on: Anthropic caches a system prompt of at least {minimum} tokens (about {} characters) for this model; shorter ones are sent without a breakpoint and answer \"prompt_cache\": \"too_short\"",
            minimum * 4
        );
    }
    if config.gateway_keys.is_empty() && config.allow_anonymous {
        tracing::warn!(
            "GATEWAY_API_KEYS is not set: anyone who can reach this server can use it (tenant \"anonymous\")"
        );
    }

    Ok(Arc::new(Gateway {
        config: Arc::new(config),
        store,
        upstream,
        pricing,
    }))
}

pub fn app(gateway: Arc<Gateway>) -> Router {
    routes::router(gateway)
}

/// Runs until the process is told to stop (locally) or forever (Lambda).
pub async fn run(config: Config) -> Result<(), String> {
    let runtime = config.runtime;
    let bind = config.bind;
    let gateway = build_gateway(config).await?;
    match runtime {
        Runtime::Lambda => lambda::run(gateway).await,
        Runtime::Local => serve_local(app(gateway), bind).await,
    }
}

async fn serve_local(app: Router, bind: std::net::SocketAddr) -> Result<(), String> {
    let listener = TcpListener::bind(bind)
        .await
        .map_err(|e| format!("BIND {bind}: cannot listen ({e})"))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("BIND {bind}: {e}"))?;
    tracing::info!(addr = %addr, "listening");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(|e| format!("server error: {e}"))
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}
