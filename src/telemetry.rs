//! Logging, set up in one place: JSON lines for CloudWatch, or text for a terminal.

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// `RUST_LOG` when set, else `info` with chatty dependencies quieted.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,fred=warn,lambda_runtime=warn,hyper=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stdout);
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .try_init(),
        LogFormat::Text => builder.try_init(),
    };
}
