//! The one binary: a Lambda function when `AWS_LAMBDA_RUNTIME_API` is set, else a local server.

use std::process::ExitCode;

use ai_gateway::config::{Config, Runtime};
use ai_gateway::{startup, telemetry};

fn main() -> ExitCode {
    // reqwest and fred both use rustls with aws-lc-rs; name the provider once for the process.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();

    let config = match Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("ai-gateway: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(config.log_format);

    // A Lambda instance serves one request at a time: a single thread avoids handing work
    // between threads for nothing (BENCHMARKS.md has the figures). WORKER_THREADS still asks
    // for a multi-thread runtime there, which is how the comparison is measured.
    let mut builder = match (config.runtime, config.worker_threads) {
        (Runtime::Lambda, None) => tokio::runtime::Builder::new_current_thread(),
        (_, workers) => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            if let Some(n) = workers {
                b.worker_threads(n);
            }
            b
        }
    };
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("ai-gateway: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(startup::run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "ai-gateway stopped");
            eprintln!("ai-gateway: {e}");
            ExitCode::FAILURE
        }
    }
}
