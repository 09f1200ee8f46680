//! A fix's record of the cloud calls it made, in order, for its audit record: each call
//! timed, its error kept, and run inside the remote-call meter when the function has one.
//! Every REST-based cloud's fixes (Azure's Resource Manager, Google's APIs) record through it.

use std::future::Future;
use std::time::Instant;

use chrono::Utc;
use escher_core::remediate::ApiCall;

use crate::RemoteCallMeter;

/// What a call was, as its audit entry names it.
#[derive(Debug, Clone, Copy)]
pub struct CallName<'a> {
    /// The API's name (`Microsoft.Storage`, `storage`, …).
    pub service: &'a str,
    pub operation: &'a str,
    /// The resource path the call addressed.
    pub target: &'a str,
    pub mutating: bool,
}

/// The calls made so far for one fix.
#[derive(Debug, Default)]
pub struct CallLog {
    calls: Vec<ApiCall>,
    meter: Option<RemoteCallMeter>,
}

impl CallLog {
    pub fn metered(meter: Option<&RemoteCallMeter>) -> Self {
        CallLog {
            calls: Vec::new(),
            meter: meter.cloned(),
        }
    }

    /// Runs `call` (metered) and records it as `name`, with `error_text` of its error if any.
    pub async fn record<T, E>(
        &mut self,
        name: CallName<'_>,
        call: impl Future<Output = Result<T, E>>,
        error_text: impl FnOnce(&E) -> String,
    ) -> Result<T, E> {
        let started_at = Utc::now();
        let clock = Instant::now();
        let result = match &self.meter {
            Some(meter) => meter.call(call).await,
            None => call.await,
        };
        tracing::debug!(
            service = name.service,
            operation = name.operation,
            target = name.target,
            ok = result.is_ok(),
            "cloud call"
        );
        self.calls.push(ApiCall {
            service: name.service.to_string(),
            operation: name.operation.to_string(),
            target: name.target.to_string(),
            mutating: name.mutating,
            started_at,
            duration_ms: u64::try_from(clock.elapsed().as_millis()).unwrap_or(u64::MAX),
            error: result.as_ref().err().map(error_text),
        });
        result
    }

    /// The calls so far (a failed fix's error carries them).
    pub fn calls(&self) -> &[ApiCall] {
        &self.calls
    }

    pub fn into_calls(self) -> Vec<ApiCall> {
        self.calls
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn each_call_is_recorded_in_order_with_its_error() {
        let mut log = CallLog::metered(Some(&RemoteCallMeter::new()));
        let name = |operation| CallName {
            service: "storage",
            operation,
            target: "b/web",
            mutating: operation == "buckets.patch",
        };
        let read: Result<u8, String> = log
            .record(name("buckets.get"), async { Ok(1) }, Clone::clone)
            .await;
        assert_eq!(read, Ok(1));
        let change: Result<u8, String> = log
            .record(
                name("buckets.patch"),
                async { Err("403 storage.buckets.update".to_string()) },
                |e| format!("denied: {e}"),
            )
            .await;
        assert!(change.is_err());
        let calls = log.into_calls();
        assert_eq!(calls.len(), 2);
        assert_eq!(
            (
                calls[0].operation.as_str(),
                calls[0].mutating,
                &calls[0].error
            ),
            ("buckets.get", false, &None)
        );
        assert_eq!(
            (calls[1].operation.as_str(), calls[1].mutating),
            ("buckets.patch", true)
        );
        assert_eq!(
            calls[1].error.as_deref(),
            Some("denied: 403 storage.buckets.update")
        );
    }
}
