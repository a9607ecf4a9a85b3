//! `GET /health`: is the gateway up, and can it reach its store.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use crate::gateway::Gateway;

pub async fn health(State(gateway): State<Arc<Gateway>>) -> Json<Value> {
    let store = gateway.store.kind();
    let reachable = gateway.store.ping().await.is_ok();
    let redis = match (store, reachable) {
        ("redis", true) => "ok",
        ("redis", false) => "down",
        // The memory store has no Redis to reach.
        _ => "none",
    };
    Json(json!({
        "status": "ok",
        "store": store,
        "redis": redis,
        "upstream": gateway.upstream.name(),
    }))
}
