//! `escher-runtime`: what every cloud's function shares, with no cloud SDK: the handler's
//! settings ([`HandlerConfig`]), building the pipeline from a cloud's [`CloudBindings`]
//! ([`build_pipeline`]), the functions' JSON logs, and the remote-call meter ([`meter`]:
//! thread CPU, calls and the wait on them, an opendal layer for the stores), and a fix's record
//! of the calls it made ([`calls::CallLog`]). A cloud's crate
//! (`escher-aws`, …) adds its SDK adapters and its binaries on top.

pub mod assembly;
pub mod calls;
pub mod config;
pub mod meter;

pub use assembly::{build_pipeline, CloudBindings};
pub use config::{
    HandlerConfig, HandlerError, DEFAULT_APPROVALS_REFRESH, PAGERDUTY_KEY_SECRET,
    SLACK_WEBHOOK_SECRET,
};
pub use meter::{RemoteCallMeter, RemoteCalls, RemoteSpan, ThreadCpu};

/// JSON logs, one line per record, for a cloud function: the platform's log service adds
/// the time, so the record does not; `RUST_LOG` filters, `info` by default.
pub fn init_function_logs() {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_current_span(false)
        .without_time()
        .init();
}
