//! The AWS session: the account, region and clients every command works with, and
//! [`call`], which turns an SDK error into a message naming the action, the resource and
//! what the user can do (missing credentials, a region that does not answer, AccessDenied
//! with the denied action).

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{bail, Context as _};
use aws_config::{BehaviorVersion, Region};
use aws_sdk_cloudformation::config::http::HttpResponse;
use aws_sdk_cloudformation::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_cloudformation::types::StackStatus;
use aws_sdk_sts::config::ProvideCredentials as _;

use crate::config::EscherConfig;
use crate::deploy::seam::Deployed;
use crate::deploy::AccessArgs;

/// How long `extend` and `destroy` wait for CloudFormation before giving up watching
/// (the operation itself continues in AWS).
pub(super) const STACK_WAIT: Duration = Duration::from_secs(60 * 60);

/// The account, region and clients every command works with.
pub struct AwsSession {
    pub account: String,
    pub region: String,
    /// Who we are (shown when AWS denies an action).
    pub caller_arn: String,
    /// The endpoint override is plain `http://` (an emulator).
    pub plain_http: bool,
    pub stack: String,
    pub config: EscherConfig,
    pub cfn: aws_sdk_cloudformation::Client,
    pub s3: aws_sdk_s3::Client,
    pub lambda: aws_sdk_lambda::Client,
    pub ssm: aws_sdk_ssm::Client,
    pub cloudtrail: aws_sdk_cloudtrail::Client,
}

/// Loads the configuration chain, checks that credentials exist and asks STS who we are.
pub async fn connect(access: &AccessArgs, config: EscherConfig) -> anyhow::Result<AwsSession> {
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if let Some(profile) = &access.profile {
        loader = loader.profile_name(profile);
    }
    // --region wins over escher.toml, which wins over the chain (AWS_REGION, the profile).
    let flag = access
        .region
        .as_deref()
        .map(|r| r.parse::<crate::config::AwsRegion>())
        .transpose()
        .map_err(|e| anyhow::anyhow!("--region: {e}"))?;
    if let Some(region) = flag
        .as_ref()
        .or(config.aws.region.as_ref())
        .map(|r| r.to_string())
    {
        loader = loader.region(Region::new(region));
    }
    if let Some(url) = &access.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    let sdk = loader.load().await;
    let region = sdk
        .region()
        .map(|r| r.to_string())
        .context("no AWS region: pass --region, set `[aws] region` in escher.toml, or set AWS_REGION (or `region` in your AWS profile)")?;
    let provider = sdk.credentials_provider().context(
        "no AWS credentials provider is configured: set AWS_PROFILE (or --profile), or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
    )?;
    if let Err(e) = provider.provide_credentials().await {
        bail!(
            "no AWS credentials found ({e}): set AWS_PROFILE (or --profile) to a profile in ~/.aws/config, run `aws sso login` for an SSO profile, or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
        );
    }
    let sts = aws_sdk_sts::Client::new(&sdk);
    let identity = call(
        sts.get_caller_identity().send().await,
        "sts:GetCallerIdentity",
        "your identity",
        &region,
    )?;
    let account = identity
        .account()
        .context("STS GetCallerIdentity returned no account id")?
        .to_string();
    Ok(AwsSession {
        caller_arn: identity.arn().unwrap_or("(unknown)").to_string(),
        plain_http: sdk.endpoint_url().is_some_and(|u| u.starts_with("http://")),
        stack: config.stack.name.to_string(),
        cfn: aws_sdk_cloudformation::Client::new(&sdk),
        s3: escher_aws::s3_client(&sdk),
        lambda: aws_sdk_lambda::Client::new(&sdk),
        ssm: aws_sdk_ssm::Client::new(&sdk),
        cloudtrail: aws_sdk_cloudtrail::Client::new(&sdk),
        account,
        region,
        config,
    })
}

/// Why an AWS call failed, in the user's terms.
#[derive(Debug, thiserror::Error)]
pub enum AwsCallError {
    #[error("AWS denied `{action}` on {resource}: {message}. Grant `{action}` to the identity you deploy with, or use a profile that has it")]
    AccessDenied {
        action: String,
        resource: String,
        message: String,
    },
    #[error("AWS rejected the credentials while calling `{action}`: {message}. Check AWS_PROFILE / --profile, refresh expired session credentials (`aws sso login`), or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")]
    BadCredentials { action: String, message: String },
    #[error("cannot reach AWS in region `{region}` for `{action}` ({detail}): check the region (a code such as `eu-west-1`, enabled for your account), the network, or --endpoint-url")]
    Unreachable {
        action: String,
        region: String,
        detail: String,
    },
    #[error("`{action}` on {resource} failed: {code}: {message}")]
    Service {
        action: String,
        resource: String,
        code: String,
        message: String,
    },
}

impl AwsCallError {
    pub(super) fn code(&self) -> Option<&str> {
        match self {
            AwsCallError::Service { code, .. } => Some(code.as_str()),
            _ => None,
        }
    }
    pub(super) fn message(&self) -> &str {
        match self {
            AwsCallError::AccessDenied { message, .. }
            | AwsCallError::BadCredentials { message, .. }
            | AwsCallError::Service { message, .. } => message.as_str(),
            AwsCallError::Unreachable { detail, .. } => detail.as_str(),
        }
    }
}

/// Classifies an SDK result; `action` is the IAM action name (`cloudformation:CreateChangeSet`).
pub fn call<T, E>(
    result: Result<T, SdkError<E, HttpResponse>>,
    action: &str,
    resource: &str,
    region: &str,
) -> Result<T, AwsCallError>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    result.map_err(|err| classify(err, action, resource, region))
}

/// [`call`] for an error already in hand.
pub fn classify<E>(
    err: SdkError<E, HttpResponse>,
    action: &str,
    resource: &str,
    region: &str,
) -> AwsCallError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let detail = || {
        let mut text = err.to_string();
        let mut source = std::error::Error::source(&err);
        while let Some(s) = source {
            text.push_str(": ");
            text.push_str(&s.to_string());
            source = s.source();
        }
        text
    };
    match &err {
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => {
            return AwsCallError::Unreachable {
                action: action.into(),
                region: region.into(),
                detail: detail(),
            }
        }
        SdkError::ConstructionFailure(_) => {
            let text = detail();
            if text.contains("credentials") {
                return AwsCallError::BadCredentials {
                    action: action.into(),
                    message: text,
                };
            }
        }
        _ => {}
    }
    let status = err.raw_response().map(|r| r.status().as_u16());
    let code = match (err.code(), status) {
        (Some(code), _) => code.to_string(),
        // HEAD answers have no body, hence no error code: the status says it.
        (None, Some(403)) => "AccessDenied".to_string(),
        (None, Some(404)) => "NotFound".to_string(),
        (None, _) => String::new(),
    };
    let message = err.message().map(str::to_string).unwrap_or_else(detail);
    match code.as_str() {
        "AccessDenied"
        | "AccessDeniedException"
        | "UnauthorizedOperation"
        | "AuthorizationError"
        | "Forbidden" => AwsCallError::AccessDenied {
            action: action.into(),
            resource: resource.into(),
            message,
        },
        "InvalidClientTokenId"
        | "UnrecognizedClientException"
        | "SignatureDoesNotMatch"
        | "ExpiredToken"
        | "ExpiredTokenException"
        | "InvalidAccessKeyId" => AwsCallError::BadCredentials {
            action: action.into(),
            message,
        },
        _ => AwsCallError::Service {
            action: action.into(),
            resource: resource.into(),
            code: if code.is_empty() {
                "error".into()
            } else {
                code
            },
            message,
        },
    }
}

/// What CloudFormation knows about the stack.
#[derive(Debug, Clone)]
pub struct StackInfo {
    pub status: StackStatus,
    pub status_reason: Option<String>,
    pub last_updated: Option<String>,
    pub outputs: BTreeMap<String, String>,
    pub parameters: BTreeMap<String, String>,
}

impl StackInfo {
    /// The stack in the seam's terms.
    pub(super) fn deployed(&self) -> Deployed {
        Deployed {
            status: self.status.as_str().to_string(),
            status_reason: self.status_reason.clone(),
            outputs: self.outputs.clone(),
        }
    }
}

impl AwsSession {
    pub(super) fn call<T, E>(
        &self,
        result: Result<T, SdkError<E, HttpResponse>>,
        action: &str,
        resource: &str,
    ) -> Result<T, AwsCallError>
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        call(result, action, resource, &self.region)
    }

    pub(super) fn stack_label(&self) -> String {
        format!(
            "stack `{}` (account {}, {})",
            self.stack, self.account, self.region
        )
    }

    /// The stack, or `None` when there is none (or only a deleted one).
    pub async fn describe_stack(&self) -> anyhow::Result<Option<StackInfo>> {
        let result = self
            .cfn
            .describe_stacks()
            .stack_name(&self.stack)
            .send()
            .await;
        let out = match self.call(result, "cloudformation:DescribeStacks", &self.stack_label()) {
            Ok(out) => out,
            Err(e)
                if e.code() == Some("ValidationError")
                    && e.message().contains("does not exist") =>
            {
                return Ok(None)
            }
            Err(e) => return Err(e.into()),
        };
        let Some(stack) = out.stacks().first() else {
            return Ok(None);
        };
        let status = stack
            .stack_status()
            .cloned()
            .context("DescribeStacks returned a stack without a status")?;
        if status == StackStatus::DeleteComplete {
            return Ok(None);
        }
        let outputs = stack
            .outputs()
            .iter()
            .filter_map(|o| Some((o.output_key()?.to_string(), o.output_value()?.to_string())))
            .collect();
        let parameters = stack
            .parameters()
            .iter()
            .filter_map(|p| {
                Some((
                    p.parameter_key()?.to_string(),
                    p.parameter_value()?.to_string(),
                ))
            })
            .collect();
        Ok(Some(StackInfo {
            parameters,
            status,
            status_reason: stack.stack_status_reason().map(str::to_string),
            last_updated: stack
                .last_updated_time()
                .or(stack.creation_time())
                .map(|t| t.to_string()),
            outputs,
        }))
    }
}
