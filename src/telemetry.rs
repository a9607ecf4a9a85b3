//! Logging, set up in one place: JSON lines for CloudWatch, or text for a terminal.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::config::LogFormat;

/// Logs to stdout, where Lambda and most process supervisors collect them.
pub fn init(format: LogFormat) {
    init_with_writer(format, std::io::stdout);
}

/// Logs to stderr, for commands whose stdout is their result (`ai-gateway summary`).
pub fn init_to_stderr(format: LogFormat) {
    init_with_writer(format, std::io::stderr);
}

/// `RUST_LOG` when set, else `info` with chatty dependencies quieted.
fn init_with_writer<W>(format: LogFormat, writer: W)
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,fred=warn,lambda_runtime=warn,hyper=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
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
