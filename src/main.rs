//! The one binary: a Lambda function when `AWS_LAMBDA_RUNTIME_API` is set, else a local server;
//! `ai-gateway summary` runs the daily summary once (see [`cli`]).

use std::process::ExitCode;

use ai_gateway::cli::{self, Command};
use ai_gateway::config::{Config, Runtime};
use ai_gateway::pricing::Pricing;
use ai_gateway::{replay, startup, summary, telemetry};
use chrono::NaiveDate;

fn main() -> ExitCode {
    // reqwest and fred both use rustls with aws-lc-rs; name the provider once for the process.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();

    let command = match cli::parse(std::env::args().skip(1)) {
        Ok(Command::Help) => {
            println!("{}", cli::USAGE);
            return ExitCode::SUCCESS;
        }
        Ok(Command::Version) => {
            println!("ai-gateway {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Ok(command) => command,
        Err(problem) => {
            eprintln!("ai-gateway: {problem}\n{}", cli::USAGE);
            return ExitCode::from(2);
        }
    };
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("ai-gateway: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    match command {
        Command::Summary { day } => run_summary(config, day),
        Command::Replay { file } => run_replay(&config, &file),
        Command::Serve | Command::Help | Command::Version => serve(config),
    }
}

fn serve(config: Config) -> ExitCode {
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
    let Some(runtime) = async_runtime(&mut builder) else {
        return ExitCode::FAILURE;
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

/// `ai-gateway replay FILE.jsonl`: the what-if under the settings in the environment.
fn run_replay(config: &Config, file: &str) -> ExitCode {
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
    let report = replay::simulate(config, &pricing, &text);
    print!("{}", replay::render(&report, file));
    ExitCode::SUCCESS
}

/// Prints the summary's JSON on stdout; the logs go to stderr so the output stays parseable.
fn run_summary(config: Config, day: Option<NaiveDate>) -> ExitCode {
    telemetry::init_to_stderr(config.log_format);
    let Some(runtime) = async_runtime(&mut tokio::runtime::Builder::new_current_thread()) else {
        return ExitCode::FAILURE;
    };
    let result = runtime.block_on(async {
        let gateway = startup::build_gateway(config).await?;
        summary::run(&gateway, day.unwrap_or_else(summary::default_day)).await
    });
    match result.and_then(|summary| {
        serde_json::to_string_pretty(&summary)
            .map_err(|e| format!("cannot encode the summary: {e}"))
    }) {
        Ok(json) => {
            println!("{json}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ai-gateway: {e}");
            ExitCode::FAILURE
        }
    }
}

fn async_runtime(builder: &mut tokio::runtime::Builder) -> Option<tokio::runtime::Runtime> {
    match builder.enable_all().build() {
        Ok(runtime) => Some(runtime),
        Err(e) => {
            eprintln!("ai-gateway: cannot start the async runtime: {e}");
            None
        }
    }
}
