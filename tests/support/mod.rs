//! Black-box test support: a private Redis per test and a fake Anthropic Messages API.
#![allow(dead_code)]

pub mod fake_anthropic;
pub mod gateway;
pub mod lambda_runtime;
pub mod openapi;
pub mod redis;
