//! ai-gateway: a caching, budget-guarding gateway in front of the Claude Messages API.
//!
//! Start reading at [`gateway`] (the request flow), then [`routes`] (HTTP) and [`store`] /
//! [`upstream`] (the two edges).

pub mod auth;
pub mod cache_key;
pub mod cli;
pub mod clock;
pub mod config;
pub mod error;
pub mod gateway;
pub mod generate_request;
pub mod lambda;
pub mod messages_request;
pub mod money;
pub mod pricing;
pub mod prompt_cache;
pub mod replay;
pub mod routes;
pub mod routing;
pub mod sse;
pub mod startup;
pub mod store;
pub mod summary;
pub mod telemetry;
pub mod upstream;
