//! `status` on AWS: the stack, its functions' deployed code and drift.

use std::time::Duration;

use aws_sdk_cloudformation::error::ProvideErrorMetadata;

use super::destroy::stack_resources;
use super::session::AwsSession;
use crate::deploy::seam::{FunctionStatus, Status};
use crate::deploy::Function;

/// The stack's status, its functions' code (from Lambda) and drift; `None` when there is no
/// stack.
pub(super) async fn status(session: &AwsSession) -> anyhow::Result<Option<Status>> {
    let Some(info) = session.describe_stack().await? else {
        return Ok(None);
    };
    let resources = stack_resources(session).await?;
    let mut functions = Vec::new();
    for function in Function::ALL {
        // The physical id (the function name): outputs may be missing on a stack some
        // CloudFormation implementations (moto) made from a change set.
        let Some(arn) = resources
            .iter()
            .find(|r| r.logical_id == function.logical_id())
            .map(|r| r.physical_id.clone())
        else {
            continue;
        };
        let arn = &arn;
        let got = session.call(
            session
                .lambda
                .get_function()
                .function_name(arn)
                .send()
                .await,
            "lambda:GetFunction",
            arn,
        );
        functions.push(match got {
            Ok(out) => {
                let c = out.configuration();
                FunctionStatus {
                    function: function.name().to_string(),
                    name: c
                        .and_then(|c| c.function_name())
                        .unwrap_or(arn.as_str())
                        .to_string(),
                    code_sha256: c.and_then(|c| c.code_sha256()).map(str::to_string),
                    last_modified: c.and_then(|c| c.last_modified()).map(str::to_string),
                    version: c.and_then(|c| c.version()).map(str::to_string),
                    error: None,
                }
            }
            Err(e) => FunctionStatus {
                function: function.name().to_string(),
                name: arn.clone(),
                code_sha256: None,
                last_modified: None,
                version: None,
                error: Some(e.to_string()),
            },
        });
    }
    let drift = drift(session).await;
    Ok(Some(Status {
        deployed: info.deployed(),
        last_updated: info.last_updated.clone(),
        functions,
        drift,
    }))
}

/// Drift detection when the API offers it; a description of why not otherwise.
pub(super) async fn drift(session: &AwsSession) -> String {
    let started = session
        .cfn
        .detect_stack_drift()
        .stack_name(&session.stack)
        .send()
        .await;
    let id = match started {
        Ok(out) => match out.stack_drift_detection_id() {
            Some(id) => id.to_string(),
            None => return "drift detection not available".into(),
        },
        Err(e) => {
            tracing::debug!("DetectStackDrift: {e:?}");
            return format!(
                "drift detection not available ({})",
                e.code().or(e.message()).unwrap_or("no answer")
            );
        }
    };
    for _ in 0..30 {
        let out = session
            .cfn
            .describe_stack_drift_detection_status()
            .stack_drift_detection_id(&id)
            .send()
            .await;
        match out {
            Ok(out) => {
                use aws_sdk_cloudformation::types::StackDriftDetectionStatus as S;
                match out.detection_status() {
                    Some(S::DetectionComplete) => {
                        return out
                            .stack_drift_status()
                            .map(|s| s.as_str().to_string())
                            .unwrap_or_else(|| "unknown".into())
                    }
                    Some(S::DetectionFailed) => {
                        return format!(
                            "drift detection failed: {}",
                            out.detection_status_reason().unwrap_or("no reason given")
                        )
                    }
                    _ => {}
                }
            }
            Err(e) => {
                return format!(
                    "drift detection not available ({})",
                    e.code().or(e.message()).unwrap_or("no answer")
                )
            }
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    "drift detection still running after a minute".into()
}
