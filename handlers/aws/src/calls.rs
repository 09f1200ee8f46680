//! Recording and classifying AWS API calls.
//!
//! Every call a remediation makes goes through [`CallLog::run`], so the audit record lists
//! each one with its timing and outcome, and every SDK error is turned into a
//! [`RemediationError`] by one function, [`classify`], so "retry the event" versus "tell the
//! user" is decided in one place.

use std::error::Error as StdError;
use std::future::Future;
use std::time::Instant;

use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use chrono::Utc;
use escher_core::remediate::{ApiCall, RemediationError};

use escher_runtime::RemoteCallMeter;

/// The IAM action a recorded call needs: `<service>:<operation>`, except where IAM names
/// the permission differently from the API operation. The conformance suite holds every
/// fix's calls to its declared permissions with it.
pub fn iam_action(call: &ApiCall) -> String {
    let operation = match (call.service.as_str(), call.operation.as_str()) {
        ("s3", "GetPublicAccessBlock") => "GetBucketPublicAccessBlock",
        ("s3", "PutPublicAccessBlock" | "DeletePublicAccessBlock") => "PutBucketPublicAccessBlock",
        ("s3", "HeadBucket" | "ListObjects" | "ListObjectsV2") => "ListBucket",
        ("s3", "ListBuckets") => "ListAllMyBuckets",
        (_, operation) => operation,
    };
    format!("{}:{operation}", call.service)
}

/// Whether a call changes something. A dry run must only make [`Access::Read`] calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    Read,
    Write,
}

/// AWS error codes that mean "slow down" or "try again later" (the SDK already retried
/// them with backoff; reaching us means the event itself should be retried later).
const TRANSIENT_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottled",
    "RequestThrottledException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "SlowDown",
    "PriorRequestNotComplete",
    "EC2ThrottledException",
    "BandwidthLimitExceeded",
    "ProvisionedThroughputExceededException",
    "RequestTimeout",
    "RequestTimeoutException",
    "InternalError",
    "InternalFailure",
    "InternalServerError",
    "ServiceUnavailable",
    "Unavailable",
];

/// A failed call, still carrying the AWS error code so a caller can treat an expected code
/// (`NoSuchBucketPolicy`, `NoSuchTagSet`, …) as an answer rather than a failure.
#[derive(Debug)]
pub(crate) struct CallError {
    pub operation: &'static str,
    pub target: String,
    /// The AWS error code, when the service answered with one.
    pub code: Option<String>,
    pub transient: bool,
    /// `code: message`, or the SDK's description when there was no service answer.
    pub message: String,
}

impl CallError {
    pub fn code(&self) -> Option<&str> {
        self.code.as_deref()
    }

    /// Turns the failure into what the pipeline sees; `api_calls` are the calls made so far
    /// (including this one), kept in the audit record when the failure is final.
    pub fn into_remediation_error(self, api_calls: Vec<ApiCall>) -> RemediationError {
        RemediationError::of_call(
            self.transient,
            self.operation,
            self.target,
            self.message,
            api_calls,
        )
    }
}

/// Classifies an SDK error: throttling, timeouts, connection (dispatch) failures, unreadable
/// responses and 5xx answers are transient; everything else (access denied, not found,
/// invalid parameters) is final and keeps the AWS error code and message.
pub(crate) fn classify<E>(operation: &'static str, target: &str, error: &SdkError<E>) -> CallError
where
    E: ProvideErrorMetadata + StdError + 'static,
{
    let status = error.raw_response().map(|r| r.status().as_u16());
    let (code, transient, message) = match error {
        SdkError::TimeoutError(_) => (
            None,
            true,
            format!("timed out: {}", DisplayErrorContext(error)),
        ),
        SdkError::DispatchFailure(_) => (
            None,
            true,
            format!("could not reach AWS: {}", DisplayErrorContext(error)),
        ),
        SdkError::ResponseError(_) => (
            None,
            true,
            format!("unreadable response: {}", DisplayErrorContext(error)),
        ),
        SdkError::ServiceError(service) => {
            let err = service.err();
            let code = err.code().map(str::to_string);
            let transient = status.is_some_and(|s| s >= 500 || s == 429)
                || code
                    .as_deref()
                    .is_some_and(|c| TRANSIENT_CODES.contains(&c));
            let message = match (err.code(), err.message()) {
                (Some(c), Some(m)) => format!("{c}: {m}"),
                (Some(c), None) => c.to_string(),
                (None, Some(m)) => m.to_string(),
                (None, None) => format!(
                    "HTTP {}: {}",
                    status.unwrap_or_default(),
                    DisplayErrorContext(error)
                ),
            };
            (code, transient, message)
        }
        // A request the SDK could not build (a bug or a bad id in the event): retrying
        // cannot help.
        _ => (
            None,
            false,
            format!("request not sent: {}", DisplayErrorContext(error)),
        ),
    };
    CallError {
        operation,
        target: target.to_string(),
        code,
        transient,
        message,
    }
}

/// The calls made so far for one remediation, in order.
#[derive(Debug, Default)]
pub(crate) struct CallLog {
    calls: Vec<ApiCall>,
    /// Meters each call whole (see [`RemoteCallMeter::call`]).
    meter: Option<RemoteCallMeter>,
}

impl CallLog {
    /// A log whose calls `meter` counts from the moment they start.
    pub fn metered(meter: &RemoteCallMeter) -> Self {
        CallLog {
            calls: Vec::new(),
            meter: Some(meter.clone()),
        }
    }

    /// Runs one SDK call, timing it and recording it (with its error, if any).
    pub async fn run<T, E, F>(
        &mut self,
        service: &'static str,
        operation: &'static str,
        target: &str,
        access: Access,
        call: F,
    ) -> Result<T, CallError>
    where
        F: Future<Output = Result<T, SdkError<E>>>,
        E: ProvideErrorMetadata + StdError + 'static,
    {
        let started_at = Utc::now();
        let clock = Instant::now();
        let result = match &self.meter {
            Some(meter) => meter.call(call).await,
            None => call.await,
        };
        let duration_ms = u64::try_from(clock.elapsed().as_millis()).unwrap_or(u64::MAX);
        let outcome = result.map_err(|e| classify(operation, target, &e));
        tracing::debug!(
            service,
            operation,
            target,
            duration_ms,
            ok = outcome.is_ok(),
            "aws call"
        );
        self.calls.push(ApiCall {
            service: service.to_string(),
            operation: operation.to_string(),
            target: target.to_string(),
            mutating: access == Access::Write,
            started_at,
            duration_ms,
            error: outcome.as_ref().err().map(|e| e.message.clone()),
        });
        outcome
    }

    /// Like [`CallLog::run`], turning any failure into the pipeline's error at once.
    pub async fn must<T, E, F>(
        &mut self,
        service: &'static str,
        operation: &'static str,
        target: &str,
        access: Access,
        call: F,
    ) -> Result<T, RemediationError>
    where
        F: Future<Output = Result<T, SdkError<E>>>,
        E: ProvideErrorMetadata + StdError + 'static,
    {
        match self.run(service, operation, target, access, call).await {
            Ok(value) => Ok(value),
            Err(e) => Err(self.fail(e)),
        }
    }

    /// The pipeline's error for `error`, carrying every call made so far.
    pub fn fail(&self, error: CallError) -> RemediationError {
        error.into_remediation_error(self.calls.clone())
    }

    pub fn calls(&self) -> &[ApiCall] {
        &self.calls
    }

    /// Appends the calls of `other` (made concurrently, in a log of its own).
    pub fn append(&mut self, other: CallLog) {
        self.calls.extend(other.calls);
    }

    pub fn into_calls(self) -> Vec<ApiCall> {
        self.calls
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_s3::config::http::HttpResponse;
    use aws_sdk_s3::error::{ConnectorError, ErrorMetadata};
    use aws_sdk_s3::operation::get_bucket_acl::GetBucketAclError;
    use aws_sdk_s3::primitives::SdkBody;

    fn service_error(status: u16, code: &str, message: &str) -> SdkError<GetBucketAclError> {
        let meta = ErrorMetadata::builder().code(code).message(message).build();
        let raw = HttpResponse::new(status.try_into().expect("valid status"), SdkBody::empty());
        SdkError::service_error(GetBucketAclError::generic(meta), raw)
    }

    #[test]
    fn throttling_and_server_errors_are_transient() {
        for (status, code) in [
            (400, "Throttling"),
            (400, "RequestLimitExceeded"),
            (503, "SlowDown"),
            (500, "InternalError"),
            (502, "SomethingNew"),
            (429, "TooManyRequests"),
        ] {
            let e = classify("GetBucketAcl", "b", &service_error(status, code, "later"));
            assert!(e.transient, "{status} {code} should be transient");
            let err = e.into_remediation_error(vec![]);
            assert!(err.is_transient());
            assert!(err.to_string().contains("GetBucketAcl on b"), "{err}");
        }
    }

    #[test]
    fn client_errors_fail_with_the_aws_code_and_message() {
        let e = classify(
            "GetBucketAcl",
            "my-bucket",
            &service_error(403, "AccessDenied", "not allowed to read the ACL"),
        );
        assert!(!e.transient);
        assert_eq!(e.code(), Some("AccessDenied"));
        let err = e.into_remediation_error(vec![]);
        let text = err.to_string();
        assert!(!err.is_transient());
        assert!(
            text.contains("AccessDenied: not allowed to read the ACL"),
            "{text}"
        );
        assert!(text.contains("my-bucket"), "{text}");
    }

    #[test]
    fn timeouts_and_unreachable_endpoints_are_transient() {
        let timeout: SdkError<GetBucketAclError> = SdkError::timeout_error("operation timeout");
        assert!(classify("GetBucketAcl", "b", &timeout).transient);
        let io: SdkError<GetBucketAclError> =
            SdkError::dispatch_failure(ConnectorError::io("connection refused".into()));
        let e = classify("GetBucketAcl", "b", &io);
        assert!(e.transient);
        assert!(e.message.contains("could not reach AWS"), "{}", e.message);
    }

    #[test]
    fn requests_that_cannot_be_built_are_final() {
        let e: SdkError<GetBucketAclError> = SdkError::construction_failure("bucket is empty");
        assert!(!classify("GetBucketAcl", "", &e).transient);
    }

    #[tokio::test]
    async fn the_log_records_failures_with_their_message() {
        let mut log = CallLog::default();
        let result: Result<(), CallError> = log
            .run("s3", "GetBucketAcl", "b", Access::Read, async {
                Err(service_error(404, "NoSuchBucket", "gone"))
            })
            .await;
        assert_eq!(result.unwrap_err().code(), Some("NoSuchBucket"));
        let ok: Result<u8, CallError> = log
            .run("s3", "PutBucketAcl", "b", Access::Write, async {
                Ok::<u8, SdkError<GetBucketAclError>>(1)
            })
            .await;
        assert_eq!(ok.ok(), Some(1));
        let calls = log.into_calls();
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[0].error.as_deref(), Some("NoSuchBucket: gone"));
        assert!(!calls[0].mutating);
        assert!(calls[1].mutating && calls[1].error.is_none());
    }
}
