//! `status` on AWS: the stack, its functions' deployed code and drift.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;

use aws_sdk_cloudformation::error::ProvideErrorMetadata;
use serde::Serialize;

use super::destroy::*;
use super::session::*;
use crate::deploy::{print_outputs, require_aws, Function, StatusArgs};

#[derive(Debug, Serialize)]
pub(super) struct StatusReport {
    stack: String,
    account: String,
    region: String,
    exists: bool,
    stack_status: Option<String>,
    status_reason: Option<String>,
    last_updated: Option<String>,
    outputs: BTreeMap<String, String>,
    functions: Vec<FunctionStatus>,
    /// `IN_SYNC`, `DRIFTED`, … or why it is unknown.
    drift: String,
}

#[derive(Debug, Serialize)]
pub(super) struct FunctionStatus {
    function: Function,
    name: String,
    code_sha256: Option<String>,
    last_modified: Option<String>,
    version: Option<String>,
    error: Option<String>,
}

pub async fn status(args: StatusArgs) -> anyhow::Result<ExitCode> {
    require_aws(args.target.cloud)?;
    let session = connect(&args.target.access).await?;
    let Some(info) = session.describe_stack().await? else {
        let report = StatusReport {
            stack: session.stack.clone(),
            account: session.account.clone(),
            region: session.region.clone(),
            exists: false,
            stack_status: None,
            status_reason: None,
            last_updated: None,
            outputs: BTreeMap::new(),
            functions: Vec::new(),
            drift: "no stack".into(),
        };
        if args.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            println!(
                "{} does not exist; `escher-provision extend --cloud aws` creates it.",
                session.stack_label()
            );
        }
        return Ok(ExitCode::SUCCESS);
    };
    let resources = stack_resources(&session).await?;
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
                    function,
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
                function,
                name: arn.clone(),
                code_sha256: None,
                last_modified: None,
                version: None,
                error: Some(e.to_string()),
            },
        });
    }
    let drift = drift(&session).await;
    let report = StatusReport {
        stack: session.stack.clone(),
        account: session.account.clone(),
        region: session.region.clone(),
        exists: true,
        stack_status: Some(info.status.as_str().to_string()),
        status_reason: info.status_reason.clone(),
        last_updated: info.last_updated.clone(),
        outputs: info.outputs.clone(),
        functions,
        drift,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("{}: {}", session.stack_label(), info.status.as_str());
    if let Some(r) = &report.status_reason {
        println!("  reason: {r}");
    }
    if let Some(t) = &report.last_updated {
        println!("  last update: {t}");
    }
    println!("  drift: {}", report.drift);
    let mut t = crate::output::table(vec!["function", "name", "code sha256", "last modified"]);
    for f in &report.functions {
        t.add_row(vec![
            f.function.name().to_string(),
            f.name.clone(),
            f.code_sha256
                .clone()
                .or_else(|| f.error.clone())
                .unwrap_or_default(),
            f.last_modified.clone().unwrap_or_default(),
        ]);
    }
    println!("{t}");
    print_outputs(&report.outputs);
    Ok(ExitCode::SUCCESS)
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
