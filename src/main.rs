//! The one binary: a Lambda function when `AWS_LAMBDA_RUNTIME_API` is set, else a local server.

use std::process::ExitCode;

use ai_gateway::config::{Config, Runtime};
use ai_gateway::pricing::Pricing;
use ai_gateway::{replay, startup, telemetry};

const USAGE: &str = "usage:
  ai-gateway                      run the gateway (Lambda when AWS_LAMBDA_RUNTIME_API is set, else a local server on BIND)
  ai-gateway replay FILE.jsonl    estimate what a log of /v1/generate bodies costs with and without the gateway";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        None => {}
        Some("replay") => return replay(&args[1..]),
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Some("-V" | "--version") => {
            println!("ai-gateway {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Some(other) => {
            eprintln!("ai-gateway: unknown command {other:?}\n{USAGE}");
            return ExitCode::from(2);
        }
    }

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
    // between threads for nothing.
    let mut builder = match config.runtime {
        Runtime::Lambda => tokio::runtime::Builder::new_current_thread(),
        Runtime::Local => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            if let Some(n) = config.worker_threads {
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

/// `ai-gateway replay FILE.jsonl`: settings come from the environment, as for the server.
fn replay(args: &[String]) -> ExitCode {
    let [file] = args else {
        eprintln!("ai-gateway replay: give one file\n{USAGE}");
        return ExitCode::from(2);
    };
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("ai-gateway: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    let pricing = match Pricing::load(config.pricing_file.as_deref()) {
        Ok(pricing) => pricing,
        Err(e) => {
            eprintln!("ai-gateway: {e}");
            return ExitCode::from(2);
        }
    };
    let text = match std::fs::read_to_string(file) {
        Ok(text) => text,
        Err(e) => {
            eprintln!("ai-gateway replay: cannot read {file}: {e}");
            return ExitCode::from(2);
        }
    };
    let report = replay::simulate(&config, &pricing, &text);
    print!("{}", replay::render(&report, file));
    ExitCode::SUCCESS
}
