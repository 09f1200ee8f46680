//! The AWS side of `extend`, `status`, `destroy` and `credentials`: CloudFormation change
//! sets, the artifacts bucket, Lambda code versions and SSM SecureStrings.
//!
//! Every AWS call goes through [`call`], which turns an SDK error into a message naming
//! the action, the resource and what the user can do (missing credentials, a region that
//! does not answer, AccessDenied with the denied action).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use aws_config::{BehaviorVersion, Region};
use aws_sdk_cloudformation::config::http::HttpResponse;
use aws_sdk_cloudformation::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_cloudformation::types::{
    Capability, ChangeAction, ChangeSetStatus, ChangeSetType, Parameter, StackStatus,
};
use aws_sdk_sts::config::ProvideCredentials as _;
use serde::Serialize;

use super::package::{locate_packages, FunctionPackage};
use super::{
    confirm, outputs_path, print_changes, print_outputs, require_aws, save_outputs, AccessArgs,
    ChangeKind, CredentialsArgs, CredentialsCommand, CredentialsSetArgs, DestroyArgs, ExtendArgs,
    Function, OtherCloud, Replacement, ResourceChange, SavedOutputs, StatusArgs, EXIT_DECLINED,
};
use crate::config::{CreateTrail, EscherConfig};

/// CloudFormation's limit for an inline template body; larger ones go through S3.
const MAX_TEMPLATE_BODY: usize = 51_200;
/// How long `extend` and `destroy` wait for CloudFormation before giving up watching
/// (the operation itself continues in AWS).
const STACK_WAIT: Duration = Duration::from_secs(60 * 60);

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
pub async fn connect(access: &AccessArgs) -> anyhow::Result<AwsSession> {
    let (config, _) = crate::config::load_for_command(access.config.as_deref())?;
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if let Some(profile) = &access.profile {
        loader = loader.profile_name(profile);
    }
    // --region wins over escher.toml, which wins over the chain (AWS_REGION, the profile).
    if let Some(region) = access
        .region
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
    fn code(&self) -> Option<&str> {
        match self {
            AwsCallError::Service { code, .. } => Some(code.as_str()),
            _ => None,
        }
    }
    fn message(&self) -> &str {
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

impl AwsSession {
    fn call<T, E>(
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

    fn stack_label(&self) -> String {
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

// ---------------------------------------------------------------------------------------
// extend

/// What `extend --json` prints.
#[derive(Debug, Serialize)]
struct ExtendReport {
    stack: String,
    account: String,
    region: String,
    /// `create` or `update`.
    change_set_type: &'static str,
    /// `no_changes`, `dry_run`, `declined`, `deployed`.
    result: &'static str,
    changes: Vec<ResourceChange>,
    /// Template parameters whose value changes (the functions' code keys).
    changed_parameters: Vec<String>,
    uploaded: Vec<String>,
    stack_status: Option<String>,
    outputs: BTreeMap<String, String>,
    outputs_file: Option<PathBuf>,
}

pub async fn extend(args: ExtendArgs) -> anyhow::Result<ExitCode> {
    require_aws(args.target.cloud)?;
    let session = connect(&args.target.access).await?;
    let progress = |msg: &str| eprintln!("{msg}");

    let mut existing = session.describe_stack().await?;
    let mut plan = stack_plan(&session.stack_label(), existing.as_ref())?;
    if plan == StackPlan::Recreate {
        eprintln!(
            "{} is in ROLLBACK_COMPLETE: its first creation failed{}; it holds no working resources and must be deleted and created again.",
            session.stack_label(),
            existing
                .as_ref()
                .and_then(|info| info.status_reason.as_deref())
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        );
        if args.dry_run {
            eprintln!("dry run: it would be deleted and created again; nothing was changed.");
            return Ok(ExitCode::SUCCESS);
        }
        if !confirm(
            "Delete it and create it again?",
            args.yes,
            "pass --yes to delete the failed stack and create it again",
        )? {
            eprintln!("nothing changed.");
            return Ok(ExitCode::from(EXIT_DECLINED));
        }
        delete_stack_and_wait(&session).await?;
        existing = None;
        plan = StackPlan::Create;
    }
    let change_set_type = match plan {
        StackPlan::Update => ChangeSetType::Update,
        StackPlan::Create | StackPlan::Recreate => ChangeSetType::Create,
    };
    let trail = trail_decision(&session, existing.is_some()).await?;
    progress(&trail.explain());
    let (timezone, _) = crate::config::resolve_timezone(args.timezone, &session.config.schedule);
    let template =
        crate::render::aws::for_deploy(&session.config, timezone, trail.creates_trail())?;

    // Packaging and artifacts.
    let bucket = artifacts_bucket(&session).await?;
    let mut uploaded = Vec::new();
    let mut parameter_values = BTreeMap::from([("ArtifactsBucket".to_string(), bucket.clone())]);
    let pinned = |f: Function| match f {
        Function::Alert => session.config.aws.artifacts.alert_zip_key.as_ref(),
        Function::Scan => session.config.aws.artifacts.scan_zip_key.as_ref(),
    };
    let to_package: Vec<Function> = Function::ALL
        .into_iter()
        .filter(|f| pinned(*f).is_none())
        .collect();
    let packages = locate_packages(
        args.artifacts.as_deref(),
        &to_package,
        session.config.aws.functions.architecture,
        !args.no_build,
    )?;
    for function in Function::ALL {
        let key = match pinned(function) {
            Some(key) => {
                if !object_exists(&session, &bucket, key.as_str()).await? {
                    bail!(
                        "escher.toml pins the {} function to `{key}`, which is not in s3://{bucket}; upload it or remove `[aws.artifacts] {}_zip_key`",
                        function.name(),
                        function.name()
                    );
                }
                key.to_string()
            }
            None => {
                let package = packages
                    .iter()
                    .find(|p| p.function == function)
                    .context("a located package went missing (a bug; please report it)")?;
                if upload_package(&session, &bucket, package).await? {
                    progress(&format!(
                        "uploaded {} → s3://{bucket}/{}",
                        package.path.display(),
                        package.key
                    ));
                    uploaded.push(package.key.clone());
                } else {
                    progress(&format!(
                        "{} function code unchanged (s3://{bucket}/{} exists)",
                        function.name(),
                        package.key
                    ));
                }
                package.key.clone()
            }
        };
        parameter_values.insert(function.code_key_parameter().to_string(), key);
    }

    // The change set.
    let template_source = template_source(&session, &bucket, &template).await?;
    let now = chrono::Utc::now();
    let change_set_name = format!(
        "escher-{}-{:03}",
        now.format("%Y%m%d%H%M%S"),
        now.timestamp_subsec_millis()
    );
    let mut create = session
        .cfn
        .create_change_set()
        .stack_name(&session.stack)
        .change_set_name(&change_set_name)
        .change_set_type(change_set_type.clone())
        .description("escher-provision extend")
        .set_parameters(Some(
            parameter_values
                .iter()
                .map(|(k, v)| parameter(k, v))
                .collect(),
        ))
        .capabilities(Capability::CapabilityIam)
        .capabilities(Capability::CapabilityNamedIam);
    create = match &template_source {
        TemplateSource::Body(body) => create.template_body(body),
        TemplateSource::Url(url) => create.template_url(url),
    };
    progress(&format!(
        "creating change set {change_set_name} ({}) for {}",
        if change_set_type == ChangeSetType::Create {
            "new stack"
        } else {
            "update"
        },
        session.stack_label()
    ));
    let created = session.call(
        create.send().await,
        "cloudformation:CreateChangeSet",
        &session.stack_label(),
    );
    // From here on the change set is named by its ARN: moto looks names up across stacks.
    let change_set_name = match &created {
        Ok(out) => out.id().unwrap_or(&change_set_name).to_string(),
        Err(_) => change_set_name,
    };
    let outcome = match created {
        Ok(_) => wait_for_change_set(&session, &change_set_name).await?,
        // Some CloudFormation implementations (moto) refuse an identical update up front.
        Err(e) if e.code() == Some("ValidationError") && is_no_change_reason(e.message()) => {
            ChangeSetOutcome::NoChanges
        }
        Err(e) => return Err(e.into()),
    };
    let mut report = ExtendReport {
        stack: session.stack.clone(),
        account: session.account.clone(),
        region: session.region.clone(),
        change_set_type: if change_set_type == ChangeSetType::Create {
            "create"
        } else {
            "update"
        },
        result: "no_changes",
        changes: Vec::new(),
        changed_parameters: Vec::new(),
        uploaded,
        stack_status: existing.as_ref().map(|i| i.status.as_str().to_string()),
        outputs: existing
            .as_ref()
            .map(|i| i.outputs.clone())
            .unwrap_or_default(),
        outputs_file: None,
    };
    if let Some(info) = &existing {
        report.changed_parameters = parameter_values
            .iter()
            .filter(|(k, v)| info.parameters.get(*k) != Some(*v))
            .map(|(k, _)| k.clone())
            .collect();
    }
    let outcome = match outcome {
        // CloudFormation lists the resources a parameter change touches; an implementation
        // that lists none for a changed parameter (moto) must still apply it.
        ChangeSetOutcome::Ready(changes)
            if changes.is_empty() && report.changed_parameters.is_empty() =>
        {
            ChangeSetOutcome::NoChanges
        }
        other => other,
    };
    let changes = match outcome {
        ChangeSetOutcome::NoChanges => {
            discard_change_set(&session, &change_set_name, &change_set_type).await;
            if !args.json {
                println!("no changes: {} is up to date.", session.stack_label());
            }
            if let Some(info) = &existing {
                report.outputs_file = save(&session, info)?;
            }
            finish(&report, args.json)?;
            return Ok(ExitCode::SUCCESS);
        }
        ChangeSetOutcome::Failed(reason) => {
            discard_change_set(&session, &change_set_name, &change_set_type).await;
            bail!(
                "CloudFormation could not prepare the change for {}: {reason}",
                session.stack_label()
            );
        }
        ChangeSetOutcome::Ready(changes) => changes,
    };
    report.changes = changes.clone();
    if !args.json {
        println!(
            "Change set for {} ({} resource change{}):",
            session.stack_label(),
            changes.len(),
            if changes.len() == 1 { "" } else { "s" }
        );
        print_changes(&changes);
        if !report.changed_parameters.is_empty() {
            println!(
                "changed parameters: {}",
                report.changed_parameters.join(", ")
            );
        }
    }
    if args.dry_run {
        discard_change_set(&session, &change_set_name, &change_set_type).await;
        report.result = "dry_run";
        if !args.json {
            println!("dry run: nothing was changed.");
        }
        finish(&report, args.json)?;
        return Ok(ExitCode::SUCCESS);
    }
    let agreed = confirm(
        &format!("Deploy these changes to {}?", session.stack_label()),
        args.yes,
        "pass --yes to deploy, or --dry-run to only see the change set",
    );
    match agreed {
        Ok(true) => {}
        Ok(false) => {
            discard_change_set(&session, &change_set_name, &change_set_type).await;
            eprintln!("nothing changed.");
            report.result = "declined";
            finish(&report, args.json)?;
            return Ok(ExitCode::from(EXIT_DECLINED));
        }
        Err(e) => {
            discard_change_set(&session, &change_set_name, &change_set_type).await;
            return Err(e);
        }
    }

    let started = aws_sdk_cloudformation::primitives::DateTime::from(std::time::SystemTime::now());
    let executed = session
        .cfn
        .execute_change_set()
        .stack_name(&session.stack)
        .change_set_name(&change_set_name)
        .send()
        .await;
    if let Err(e) = session.call(
        executed,
        "cloudformation:ExecuteChangeSet",
        &session.stack_label(),
    ) {
        // moto applies the change inside ExecuteChangeSet and returns a failing resource's
        // error here; real CloudFormation reports it through the stack events below.
        let events = failure_events(&session, started).await.unwrap_or_default();
        bail!("deploying {} failed: {e}{}", session.stack_label(), events);
    }
    let info = watch_stack(&session, changes.len(), started).await?;
    let failed = is_failure(&info.status);
    if failed {
        let events = failure_events(&session, started).await.unwrap_or_default();
        bail!(
            "deploying {} failed: the stack is {}{}{}",
            session.stack_label(),
            info.status.as_str(),
            info.status_reason
                .as_deref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default(),
            events
        );
    }
    report.result = "deployed";
    report.stack_status = Some(info.status.as_str().to_string());
    report.outputs = info.outputs.clone();
    report.outputs_file = save(&session, &info)?;
    if !args.json {
        println!("{} is {}.", session.stack_label(), info.status.as_str());
        print_outputs(&info.outputs);
        if let Some(path) = &report.outputs_file {
            println!("outputs saved to {}", path.display());
        }
    }
    finish(&report, args.json)?;
    Ok(ExitCode::SUCCESS)
}

/// Whether the stack brings its own CloudTrail trail, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrailDecision {
    /// `create_trail = "always"`.
    Always,
    /// `create_trail = "never"`.
    Never,
    /// `auto`, and the account records API calls with none of its trails but the stack's.
    NoTrailInAccount,
    /// `auto`, and the stack already has its trail: it stays (taking it away would stop the
    /// API-call alerts that the user got it for).
    KeepStackTrail,
    /// `auto`, and these trails (names or ARNs) already record the account's API calls.
    AccountHasTrails(Vec<String>),
}

impl TrailDecision {
    /// The decision for `auto`, from whether the stack has its trail already and the
    /// trails CloudTrail lists in the region (other regions' multi-region trails included).
    pub fn auto(stack_has_trail: bool, account_trails: Vec<String>) -> TrailDecision {
        if stack_has_trail {
            TrailDecision::KeepStackTrail
        } else if account_trails.is_empty() {
            TrailDecision::NoTrailInAccount
        } else {
            TrailDecision::AccountHasTrails(account_trails)
        }
    }

    pub fn creates_trail(&self) -> bool {
        match self {
            TrailDecision::Always
            | TrailDecision::NoTrailInAccount
            | TrailDecision::KeepStackTrail => true,
            TrailDecision::Never | TrailDecision::AccountHasTrails(_) => false,
        }
    }

    pub fn explain(&self) -> String {
        match self {
            TrailDecision::Always => "CloudTrail: the stack creates its own trail (create_trail = \"always\")".into(),
            TrailDecision::Never => "CloudTrail: no trail in the stack (create_trail = \"never\"); API-call alerts arrive only if another trail records them".into(),
            TrailDecision::NoTrailInAccount => "CloudTrail: the account has no trail, so the stack creates one (API-call alerts need it); create_trail = \"never\" leaves it out".into(),
            TrailDecision::KeepStackTrail => "CloudTrail: the stack's own trail is kept".into(),
            TrailDecision::AccountHasTrails(names) => format!(
                "CloudTrail: the account already has a trail ({}), so the stack creates none; create_trail = \"always\" adds one anyway",
                names.join(", ")
            ),
        }
    }
}

/// `[aws.cloudtrail] create_trail` resolved against the account.
async fn trail_decision(session: &AwsSession, stack_exists: bool) -> anyhow::Result<TrailDecision> {
    match session.config.aws.cloudtrail.create_trail {
        CreateTrail::Always => return Ok(TrailDecision::Always),
        CreateTrail::Never => return Ok(TrailDecision::Never),
        CreateTrail::Auto => {}
    }
    let stack_has_trail = stack_exists
        && stack_resources(session)
            .await?
            .iter()
            .any(|r| r.resource_type == "AWS::CloudTrail::Trail");
    if stack_has_trail {
        return Ok(TrailDecision::KeepStackTrail);
    }
    let out = session.call(
        session
            .cloudtrail
            .describe_trails()
            .include_shadow_trails(true)
            .send()
            .await,
        "cloudtrail:DescribeTrails",
        &format!(
            "the trails of account {} in {}",
            session.account, session.region
        ),
    )?;
    let trails = out
        .trail_list()
        .iter()
        .filter_map(|t| t.name().or(t.trail_arn()).map(str::to_string))
        .collect();
    Ok(TrailDecision::auto(false, trails))
}

fn finish(report: &ExtendReport, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
    }
    Ok(())
}

fn save(session: &AwsSession, info: &StackInfo) -> anyhow::Result<Option<PathBuf>> {
    let path = outputs_path(&session.account, &session.region)?;
    save_outputs(
        &path,
        &SavedOutputs {
            stack: &session.stack,
            account: &session.account,
            region: &session.region,
            stack_status: info.status.as_str(),
            outputs: &info.outputs,
        },
    )?;
    Ok(Some(path))
}

fn parameter(key: &str, value: &str) -> Parameter {
    Parameter::builder()
        .parameter_key(key)
        .parameter_value(value)
        .build()
}

/// Refuses stacks that are busy or stuck, saying what to do.
/// What `extend` does with the stack it found, decided from its status alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StackPlan {
    /// No stack yet (or only the empty one an unexecuted change set leaves): a CREATE change set.
    Create,
    /// A working stack: an UPDATE change set.
    Update,
    /// Its first creation failed (ROLLBACK_COMPLETE): it cannot be updated, only deleted and
    /// created again, which needs the user's consent.
    Recreate,
}

/// Also refuses a stack that is busy or stuck in a failed state, saying what to do.
fn stack_plan(label: &str, info: Option<&StackInfo>) -> anyhow::Result<StackPlan> {
    let Some(info) = info else {
        return Ok(StackPlan::Create);
    };
    let status = info.status.as_str();
    match &info.status {
        StackStatus::ReviewInProgress | StackStatus::DeleteComplete => Ok(StackPlan::Create),
        StackStatus::RollbackComplete => Ok(StackPlan::Recreate),
        _ if status.ends_with("_IN_PROGRESS") => bail!(
            "{label} is busy ({status}); wait until CloudFormation finishes, then run extend again"
        ),
        _ if status.ends_with("_FAILED") => bail!(
            "{label} is {status}{}; fix it in the CloudFormation console (for UPDATE_ROLLBACK_FAILED: `aws cloudformation continue-update-rollback`), then run extend again",
            info.status_reason
                .as_deref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        ),
        _ => Ok(StackPlan::Update),
    }
}

fn is_failure(status: &StackStatus) -> bool {
    let s = status.as_str();
    s.ends_with("_FAILED") || s.contains("ROLLBACK")
}

/// The artifacts bucket: `[aws.artifacts] bucket`, else `escher-artifacts-<account>-<region>`,
/// created (versioned, encrypted, public access blocked, TLS only) when missing.
async fn artifacts_bucket(session: &AwsSession) -> anyhow::Result<String> {
    let bucket = match &session.config.aws.artifacts.bucket {
        Some(b) => b.to_string(),
        None => format!("escher-artifacts-{}-{}", session.account, session.region),
    };
    let head = session.s3.head_bucket().bucket(&bucket).send().await;
    let status = head
        .as_ref()
        .err()
        .and_then(|e| e.raw_response())
        .map(|r| r.status().as_u16());
    match (head, status) {
        (Ok(_), _) => return Ok(bucket),
        (Err(_), Some(404)) => {}
        (Err(_), Some(403)) => bail!(
            "the artifacts bucket `{bucket}` exists but is not accessible to {} (another account may own it, or s3:ListBucket is denied); set `[aws.artifacts] bucket` in escher.toml to a bucket you own",
            session.caller_arn
        ),
        (Err(e), _) => {
            return Err(classify(e, "s3:ListBucket", &format!("bucket `{bucket}`"), &session.region).into())
        }
    }
    eprintln!("creating the artifacts bucket s3://{bucket} (versioned, encrypted, not public)");
    let mut create = session.s3.create_bucket().bucket(&bucket);
    if session.region != "us-east-1" {
        use aws_sdk_s3::types::{BucketLocationConstraint, CreateBucketConfiguration};
        create = create.create_bucket_configuration(
            CreateBucketConfiguration::builder()
                .location_constraint(BucketLocationConstraint::from(session.region.as_str()))
                .build(),
        );
    }
    let what = format!("bucket `{bucket}`");
    match session.call(create.send().await, "s3:CreateBucket", &what) {
        Ok(_) => {}
        // Another extend of this account (another stack) created it a moment ago.
        Err(e) if e.code() == Some("BucketAlreadyOwnedByYou") => {}
        Err(e) => return Err(e.into()),
    }
    use aws_sdk_s3::types::{
        BucketVersioningStatus, PublicAccessBlockConfiguration, ServerSideEncryption,
        ServerSideEncryptionByDefault, ServerSideEncryptionConfiguration, ServerSideEncryptionRule,
        VersioningConfiguration,
    };
    session.call(
        session
            .s3
            .put_public_access_block()
            .bucket(&bucket)
            .public_access_block_configuration(
                PublicAccessBlockConfiguration::builder()
                    .block_public_acls(true)
                    .ignore_public_acls(true)
                    .block_public_policy(true)
                    .restrict_public_buckets(true)
                    .build(),
            )
            .send()
            .await,
        "s3:PutBucketPublicAccessBlock",
        &what,
    )?;
    session.call(
        session
            .s3
            .put_bucket_versioning()
            .bucket(&bucket)
            .versioning_configuration(
                VersioningConfiguration::builder()
                    .status(BucketVersioningStatus::Enabled)
                    .build(),
            )
            .send()
            .await,
        "s3:PutBucketVersioning",
        &what,
    )?;
    let sse = ServerSideEncryptionConfiguration::builder()
        .rules(
            ServerSideEncryptionRule::builder()
                .apply_server_side_encryption_by_default(
                    ServerSideEncryptionByDefault::builder()
                        .sse_algorithm(ServerSideEncryption::Aes256)
                        .build()?,
                )
                .build(),
        )
        .build()?;
    session.call(
        session
            .s3
            .put_bucket_encryption()
            .bucket(&bucket)
            .server_side_encryption_configuration(sse)
            .send()
            .await,
        "s3:PutEncryptionConfiguration",
        &what,
    )?;
    // Deny plain HTTP. Not against an http:// endpoint (an emulator such as moto, which
    // enforces bucket policies): the policy would lock the CLI out of its own bucket.
    if session.plain_http {
        return Ok(bucket);
    }
    let policy = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "TlsOnly",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": [format!("arn:aws:s3:::{bucket}"), format!("arn:aws:s3:::{bucket}/*")],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        }],
    });
    session.call(
        session
            .s3
            .put_bucket_policy()
            .bucket(&bucket)
            .policy(policy.to_string())
            .send()
            .await,
        "s3:PutBucketPolicy",
        &what,
    )?;
    Ok(bucket)
}

async fn object_exists(session: &AwsSession, bucket: &str, key: &str) -> anyhow::Result<bool> {
    let head = session
        .s3
        .head_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await;
    match head {
        Ok(_) => Ok(true),
        Err(e) if e.raw_response().map(|r| r.status().as_u16()) == Some(404) => Ok(false),
        Err(e) => Err(classify(
            e,
            "s3:GetObject",
            &format!("s3://{bucket}/{key}"),
            &session.region,
        )
        .into()),
    }
}

/// Uploads the zip unless its content-addressed key exists; true when it was uploaded.
async fn upload_package(
    session: &AwsSession,
    bucket: &str,
    package: &FunctionPackage,
) -> anyhow::Result<bool> {
    if object_exists(session, bucket, &package.key).await? {
        return Ok(false);
    }
    session.call(
        session
            .s3
            .put_object()
            .bucket(bucket)
            .key(&package.key)
            .content_type("application/zip")
            .body(package.bytes.clone().into())
            .send()
            .await,
        "s3:PutObject",
        &format!("s3://{bucket}/{}", package.key),
    )?;
    Ok(true)
}

enum TemplateSource {
    Body(String),
    Url(String),
}

/// Inline up to CloudFormation's limit; larger templates are uploaded beside the zips.
async fn template_source(
    session: &AwsSession,
    bucket: &str,
    template: &str,
) -> anyhow::Result<TemplateSource> {
    if template.len() <= MAX_TEMPLATE_BODY {
        return Ok(TemplateSource::Body(template.to_string()));
    }
    let package = FunctionPackage::from_bytes(
        Function::Alert,
        PathBuf::new(),
        template.as_bytes().to_vec(),
    );
    let key = format!("templates/{}", package.key.replace(".zip", ".yaml"));
    session.call(
        session
            .s3
            .put_object()
            .bucket(bucket)
            .key(&key)
            .content_type("application/x-yaml")
            .body(package.bytes.into())
            .send()
            .await,
        "s3:PutObject",
        &format!("s3://{bucket}/{key}"),
    )?;
    Ok(TemplateSource::Url(format!(
        "https://{bucket}.s3.{}.amazonaws.com/{key}",
        session.region
    )))
}

enum ChangeSetOutcome {
    Ready(Vec<ResourceChange>),
    NoChanges,
    Failed(String),
}

async fn wait_for_change_set(session: &AwsSession, name: &str) -> anyhow::Result<ChangeSetOutcome> {
    let started = Instant::now();
    loop {
        let mut changes = Vec::new();
        let mut next: Option<String> = None;
        let mut status;
        let mut reason;
        loop {
            let out = session.call(
                session
                    .cfn
                    .describe_change_set()
                    .stack_name(&session.stack)
                    .change_set_name(name)
                    .set_next_token(next.clone())
                    .send()
                    .await,
                "cloudformation:DescribeChangeSet",
                &format!("change set {name} of {}", session.stack_label()),
            )?;
            status = out.status().cloned();
            reason = out.status_reason().map(str::to_string);
            for change in out.changes() {
                if let Some(rc) = change.resource_change() {
                    changes.push(ResourceChange {
                        action: match rc.action() {
                            Some(ChangeAction::Add) => ChangeKind::Add,
                            Some(ChangeAction::Modify) => ChangeKind::Modify,
                            Some(ChangeAction::Remove) => ChangeKind::Remove,
                            _ => ChangeKind::Other,
                        },
                        logical_id: rc.logical_resource_id().unwrap_or("?").to_string(),
                        resource_type: rc.resource_type().unwrap_or("?").to_string(),
                        replacement: match rc.replacement() {
                            Some(aws_sdk_cloudformation::types::Replacement::True) => {
                                Replacement::Yes
                            }
                            Some(aws_sdk_cloudformation::types::Replacement::Conditional) => {
                                Replacement::Conditional
                            }
                            _ => Replacement::No,
                        },
                    });
                }
            }
            next = out.next_token().map(str::to_string);
            if next.is_none() {
                break;
            }
        }
        match status {
            Some(ChangeSetStatus::CreateComplete) => return Ok(ChangeSetOutcome::Ready(changes)),
            Some(ChangeSetStatus::Failed) => {
                let reason = reason.unwrap_or_else(|| "no reason given".into());
                // CloudFormation reports a change set without changes as FAILED.
                if is_no_change_reason(&reason) {
                    return Ok(ChangeSetOutcome::NoChanges);
                }
                return Ok(ChangeSetOutcome::Failed(reason));
            }
            _ => {}
        }
        if started.elapsed() > Duration::from_secs(15 * 60) {
            bail!("change set {name} was not ready after 15 minutes; look at it in the CloudFormation console");
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

fn is_no_change_reason(reason: &str) -> bool {
    reason.contains("didn't contain changes") || reason.contains("No updates are to be performed")
}

/// Deletes an unexecuted change set; for a new stack also the empty REVIEW_IN_PROGRESS
/// stack CloudFormation made for it, so nothing is left behind.
async fn discard_change_set(session: &AwsSession, name: &str, kind: &ChangeSetType) {
    let deleted = session
        .cfn
        .delete_change_set()
        .stack_name(&session.stack)
        .change_set_name(name)
        .send()
        .await;
    if let Err(e) = deleted {
        tracing::warn!("could not delete change set {name}: {e}");
    }
    if *kind == ChangeSetType::Create {
        if let Ok(Some(info)) = session.describe_stack().await {
            if info.status == StackStatus::ReviewInProgress {
                let _ = session
                    .cfn
                    .delete_stack()
                    .stack_name(&session.stack)
                    .send()
                    .await;
            }
        }
    }
}

/// Polls the stack until it leaves `*_IN_PROGRESS`, showing its events as they come.
async fn watch_stack(
    session: &AwsSession,
    total: usize,
    since: aws_sdk_cloudformation::primitives::DateTime,
) -> anyhow::Result<StackInfo> {
    let bar = if std::io::stderr().is_terminal() {
        let bar = indicatif::ProgressBar::new(total as u64);
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed}] {bar:30} {pos}/{len} {msg}",
        ) {
            bar.set_style(style);
        }
        bar.enable_steady_tick(Duration::from_millis(200));
        Some(bar)
    } else {
        None
    };
    let mut seen = HashSet::new();
    let mut done = BTreeSet::new();
    let started = Instant::now();
    let mut polls = 0u32;
    let info = loop {
        for event in new_events(session, since, &mut seen).await? {
            let line = format!(
                "  {:<20} {:<28} {}{}",
                event.status,
                event.logical_id,
                event.resource_type,
                event
                    .reason
                    .as_deref()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default()
            );
            match &bar {
                Some(bar) => {
                    bar.println(line);
                    if event.status.ends_with("_COMPLETE")
                        && event.logical_id != session.stack
                        && done.insert(event.logical_id.clone())
                    {
                        bar.inc(1);
                    }
                    bar.set_message(event.logical_id.clone());
                }
                None => eprintln!("{line}"),
            }
        }
        let info = session
            .describe_stack()
            .await?
            .context("the stack disappeared while it was being deployed")?;
        if info.status == StackStatus::ReviewInProgress
            && started.elapsed() > Duration::from_secs(120)
        {
            bail!(
                "{} is still REVIEW_IN_PROGRESS two minutes after the change set was executed; look at it in the CloudFormation console",
                session.stack_label()
            );
        }
        if !info.status.as_str().ends_with("_IN_PROGRESS") {
            break info;
        }
        if started.elapsed() > STACK_WAIT {
            bail!(
                "{} is still {} after an hour; it continues in AWS (`escher-provision status --cloud aws`)",
                session.stack_label(),
                info.status.as_str()
            );
        }
        polls += 1;
        let pause = if polls < 10 { 1 } else { 3 };
        tokio::time::sleep(Duration::from_secs(pause)).await;
    };
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    Ok(info)
}

struct Event {
    logical_id: String,
    resource_type: String,
    status: String,
    reason: Option<String>,
}

/// Events newer than `since` not yet shown, oldest first.
async fn new_events(
    session: &AwsSession,
    since: aws_sdk_cloudformation::primitives::DateTime,
    seen: &mut HashSet<String>,
) -> anyhow::Result<Vec<Event>> {
    let out = session.call(
        session
            .cfn
            .describe_stack_events()
            .stack_name(&session.stack)
            .send()
            .await,
        "cloudformation:DescribeStackEvents",
        &session.stack_label(),
    )?;
    let mut events = Vec::new();
    // The first page is newest first; a deploy shows its events as they happen.
    for e in out.stack_events() {
        let fresh = e.timestamp().is_some_and(|t| t.secs() >= since.secs() - 1);
        let id = e.event_id().unwrap_or_default().to_string();
        if !fresh || !seen.insert(id) {
            continue;
        }
        events.push(Event {
            logical_id: e.logical_resource_id().unwrap_or("?").to_string(),
            resource_type: e.resource_type().unwrap_or("?").to_string(),
            status: e
                .resource_status()
                .map(|s| s.as_str().to_string())
                .unwrap_or_default(),
            reason: e.resource_status_reason().map(str::to_string),
        });
    }
    events.reverse();
    Ok(events)
}

/// The failed resources and their reasons, as lines to append to an error.
async fn failure_events(
    session: &AwsSession,
    since: aws_sdk_cloudformation::primitives::DateTime,
) -> anyhow::Result<String> {
    let mut seen = HashSet::new();
    let failed: Vec<String> = new_events(session, since, &mut seen)
        .await?
        .into_iter()
        .filter(|e| e.status.ends_with("_FAILED") && e.logical_id != session.stack)
        .filter(|e| {
            // Resources cancelled because another failed are noise.
            !e.reason
                .as_deref()
                .is_some_and(|r| r.contains("cancelled") || r.contains("canceled"))
        })
        .map(|e| {
            format!(
                "\n  {} ({}) {}: {}",
                e.logical_id,
                e.resource_type,
                e.status,
                e.reason.unwrap_or_else(|| "no reason given".into())
            )
        })
        .collect();
    if failed.is_empty() {
        Ok(String::new())
    } else {
        Ok(format!("\nfailed resources:{}", failed.join("")))
    }
}

async fn delete_stack_and_wait(session: &AwsSession) -> anyhow::Result<()> {
    session.call(
        session
            .cfn
            .delete_stack()
            .stack_name(&session.stack)
            .send()
            .await,
        "cloudformation:DeleteStack",
        &session.stack_label(),
    )?;
    let started = Instant::now();
    loop {
        match session.describe_stack().await? {
            None => return Ok(()),
            Some(info) if info.status == StackStatus::DeleteFailed => bail!(
                "deleting {} failed{}",
                session.stack_label(),
                info.status_reason
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default()
            ),
            Some(_) if started.elapsed() > STACK_WAIT => bail!(
                "{} is still being deleted after an hour; it continues in AWS",
                session.stack_label()
            ),
            Some(_) => tokio::time::sleep(Duration::from_secs(2)).await,
        }
    }
}

// ---------------------------------------------------------------------------------------
// status

#[derive(Debug, Serialize)]
struct StatusReport {
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
struct FunctionStatus {
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
async fn drift(session: &AwsSession) -> String {
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

// ---------------------------------------------------------------------------------------
// destroy

#[derive(Debug, Serialize)]
struct DestroyReport {
    stack: String,
    account: String,
    region: String,
    /// `no_stack`, `declined`, `deleted`.
    result: &'static str,
    deleted: Vec<StackResource>,
    kept: Vec<KeptResource>,
    emptied_buckets: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
struct StackResource {
    logical_id: String,
    resource_type: String,
    physical_id: String,
}

#[derive(Debug, Clone, Serialize)]
struct KeptResource {
    logical_id: String,
    resource_type: String,
    physical_id: String,
    why: String,
}

pub async fn destroy(args: DestroyArgs) -> anyhow::Result<ExitCode> {
    require_aws(args.target.cloud)?;
    let session = connect(&args.target.access).await?;
    let mut report = DestroyReport {
        stack: session.stack.clone(),
        account: session.account.clone(),
        region: session.region.clone(),
        result: "no_stack",
        deleted: Vec::new(),
        kept: Vec::new(),
        emptied_buckets: Vec::new(),
    };
    let Some(_stack) = session.describe_stack().await? else {
        if args.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            println!(
                "{} does not exist; nothing to delete.",
                session.stack_label()
            );
        }
        return Ok(ExitCode::SUCCESS);
    };
    let retained = retained_resources(&session).await?;
    let resources = stack_resources(&session).await?;
    let state_bucket = resources
        .iter()
        .find(|r| r.logical_id == "StateBucket")
        .map(|r| r.physical_id.clone());
    for r in resources {
        let deleting_data =
            args.delete_data && state_bucket.as_deref() == Some(r.physical_id.as_str());
        if retained.contains(&r.logical_id) && !deleting_data {
            let why = match r.logical_id.as_str() {
                "AuditBucket" => "object-locked audit records: always kept".to_string(),
                "StateBucket" => {
                    "approvals and handler state: kept unless --delete-data".to_string()
                }
                "EncryptionKey" => "the kept buckets are encrypted with it".to_string(),
                _ => "DeletionPolicy: Retain".to_string(),
            };
            report.kept.push(KeptResource {
                logical_id: r.logical_id,
                resource_type: r.resource_type,
                physical_id: r.physical_id,
                why,
            });
        } else {
            report.deleted.push(r);
        }
    }
    if !args.json || !args.yes {
        let mut t = crate::output::table(vec!["", "logical id", "type", "physical id", "why"]);
        for r in &report.deleted {
            t.add_row(vec![
                "delete".to_string(),
                r.logical_id.clone(),
                r.resource_type.clone(),
                r.physical_id.clone(),
                if Some(&r.physical_id) == state_bucket.as_ref() {
                    "--delete-data: emptied (every version), then deleted".to_string()
                } else {
                    String::new()
                },
            ]);
        }
        for r in &report.kept {
            t.add_row(vec![
                "keep".to_string(),
                r.logical_id.clone(),
                r.resource_type.clone(),
                r.physical_id.clone(),
                r.why.clone(),
            ]);
        }
        eprintln!("Destroying {}:\n{t}", session.stack_label());
    }
    let agreed = confirm(
        &format!("Delete {}?", session.stack_label()),
        args.yes,
        "pass --yes to delete the stack",
    )?;
    if !agreed {
        report.result = "declined";
        eprintln!("nothing changed.");
        if args.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
        return Ok(ExitCode::from(EXIT_DECLINED));
    }
    if args.delete_data {
        if let Some(bucket) = &state_bucket {
            eprintln!("emptying s3://{bucket} (every version)");
            empty_bucket(&session, bucket).await?;
            report.emptied_buckets.push(bucket.clone());
        }
    }
    eprintln!("deleting {}", session.stack_label());
    delete_stack_and_wait(&session).await?;
    if args.delete_data {
        if let Some(bucket) = &state_bucket {
            // Retained by the template, so CloudFormation left it; --delete-data asked for it.
            let deleted = session.s3.delete_bucket().bucket(bucket).send().await;
            match deleted {
                Ok(_) => {}
                Err(e) if e.raw_response().map(|r| r.status().as_u16()) == Some(404) => {}
                Err(e) => {
                    return Err(classify(
                        e,
                        "s3:DeleteBucket",
                        &format!("bucket `{bucket}`"),
                        &session.region,
                    )
                    .into())
                }
            }
        }
    }
    if let Ok(path) = outputs_path(&session.account, &session.region) {
        let _ = std::fs::remove_file(path);
    }
    report.result = "deleted";
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{} deleted.", session.stack_label());
        for k in &report.kept {
            println!("  kept {} {} ({})", k.logical_id, k.physical_id, k.why);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Logical ids with `DeletionPolicy: Retain` in the deployed template. Our template writes
/// each resource as `  LogicalId:` and its policy as `    DeletionPolicy: Retain`.
async fn retained_resources(session: &AwsSession) -> anyhow::Result<BTreeSet<String>> {
    let out = session.call(
        session
            .cfn
            .get_template()
            .stack_name(&session.stack)
            .send()
            .await,
        "cloudformation:GetTemplate",
        &session.stack_label(),
    )?;
    Ok(retained_in_template(
        out.template_body().unwrap_or_default(),
    ))
}

pub fn retained_in_template(template: &str) -> BTreeSet<String> {
    let mut retained = BTreeSet::new();
    let mut in_resources = false;
    let mut current: Option<&str> = None;
    for line in template.lines() {
        if !line.starts_with(' ') && !line.trim().is_empty() && !line.starts_with('#') {
            in_resources = line.trim_end() == "Resources:";
            current = None;
            continue;
        }
        if !in_resources {
            continue;
        }
        if let Some(rest) = line.strip_prefix("  ") {
            if !rest.starts_with(' ') && !rest.starts_with('#') && rest.trim_end().ends_with(':') {
                current = Some(rest.trim_end().trim_end_matches(':'));
                continue;
            }
        }
        if line.trim() == "DeletionPolicy: Retain" {
            if let Some(id) = current {
                retained.insert(id.to_string());
            }
        }
    }
    retained
}

async fn stack_resources(session: &AwsSession) -> anyhow::Result<Vec<StackResource>> {
    let mut resources = Vec::new();
    let mut next = None;
    loop {
        let out = session.call(
            session
                .cfn
                .list_stack_resources()
                .stack_name(&session.stack)
                .set_next_token(next)
                .send()
                .await,
            "cloudformation:ListStackResources",
            &session.stack_label(),
        )?;
        for r in out.stack_resource_summaries() {
            // Every resource of a template has a logical id; an entry without one (moto lists
            // a few) names nothing the user could recognise or act on.
            if r.logical_resource_id().is_none_or(str::is_empty) {
                continue;
            }
            resources.push(StackResource {
                logical_id: r.logical_resource_id().unwrap_or("?").to_string(),
                resource_type: r.resource_type().unwrap_or("?").to_string(),
                physical_id: r.physical_resource_id().unwrap_or("").to_string(),
            });
        }
        next = out.next_token().map(str::to_string);
        if next.is_none() {
            break;
        }
    }
    Ok(resources)
}

/// Deletes every object version and delete marker, so the bucket itself can be deleted.
async fn empty_bucket(session: &AwsSession, bucket: &str) -> anyhow::Result<()> {
    let what = format!("bucket `{bucket}`");
    let mut key_marker = None;
    let mut version_marker = None;
    loop {
        let out = session.call(
            session
                .s3
                .list_object_versions()
                .bucket(bucket)
                .set_key_marker(key_marker.clone())
                .set_version_id_marker(version_marker.clone())
                .send()
                .await,
            "s3:ListBucketVersions",
            &what,
        )?;
        let versions = out
            .versions()
            .iter()
            .map(|v| (v.key().unwrap_or_default(), v.version_id()))
            .chain(
                out.delete_markers()
                    .iter()
                    .map(|m| (m.key().unwrap_or_default(), m.version_id())),
            );
        for (key, version) in versions {
            session.call(
                session
                    .s3
                    .delete_object()
                    .bucket(bucket)
                    .key(key)
                    .set_version_id(version.map(str::to_string))
                    .send()
                    .await,
                "s3:DeleteObjectVersion",
                &format!("s3://{bucket}/{key}"),
            )?;
        }
        if out.is_truncated() != Some(true) {
            return Ok(());
        }
        key_marker = out.next_key_marker().map(str::to_string);
        version_marker = out.next_version_id_marker().map(str::to_string);
    }
}

// ---------------------------------------------------------------------------------------
// credentials

/// `/escher/<stack>/credentials/`: inside the path the functions may read.
fn credentials_path(stack: &str) -> String {
    format!("/escher/{stack}/credentials/")
}

#[derive(Debug, Serialize)]
struct StoredCredential {
    cloud: String,
    parameter: String,
    last_modified: Option<String>,
}

pub async fn credentials(args: CredentialsArgs) -> anyhow::Result<ExitCode> {
    let session = connect(&args.access).await?;
    let prefix = credentials_path(&session.stack);
    match args.command {
        CredentialsCommand::Set(set) => {
            let value = credential_value(&set)?;
            let name = format!("{prefix}{}", set.cloud.as_str());
            session.call(
                session
                    .ssm
                    .put_parameter()
                    .name(&name)
                    .description(format!(
                        "Escher Extend: {} credentials for the functions of stack {}",
                        set.cloud.as_str(),
                        session.stack
                    ))
                    .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
                    // The stack's key: the functions' roles may decrypt with it.
                    .key_id(format!("alias/{}", session.stack))
                    .value(value)
                    .overwrite(true)
                    .send()
                    .await,
                "ssm:PutParameter",
                &format!("parameter {name}"),
            )?;
            println!(
                "stored the {} credentials as SecureString {name}",
                set.cloud.as_str()
            );
        }
        CredentialsCommand::List { json } => {
            let mut stored = Vec::new();
            let mut next = None;
            loop {
                let out = session.call(
                    session
                        .ssm
                        .get_parameters_by_path()
                        .path(&prefix)
                        .with_decryption(false)
                        .set_next_token(next)
                        .send()
                        .await,
                    "ssm:GetParametersByPath",
                    &format!("path {prefix}"),
                )?;
                for p in out.parameters() {
                    let name = p.name().unwrap_or_default().to_string();
                    stored.push(StoredCredential {
                        cloud: name.trim_start_matches(&prefix).to_string(),
                        parameter: name,
                        last_modified: p.last_modified_date().map(|d| d.to_string()),
                    });
                }
                next = out.next_token().map(str::to_string);
                if next.is_none() {
                    break;
                }
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&stored)?);
            } else if stored.is_empty() {
                println!("no credentials stored under {prefix}");
            } else {
                let mut t = crate::output::table(vec!["cloud", "parameter", "last modified"]);
                for c in &stored {
                    t.add_row(vec![
                        c.cloud.clone(),
                        c.parameter.clone(),
                        c.last_modified.clone().unwrap_or_default(),
                    ]);
                }
                println!("{t}");
            }
        }
        CredentialsCommand::Remove { cloud } => {
            let name = format!("{prefix}{}", cloud.as_str());
            session.call(
                session.ssm.delete_parameter().name(&name).send().await,
                "ssm:DeleteParameter",
                &format!("parameter {name}"),
            )?;
            println!("removed {name}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The JSON the functions read; secrets come from the environment or a file, never argv.
fn credential_value(set: &CredentialsSetArgs) -> anyhow::Result<String> {
    match set.cloud {
        OtherCloud::Azure => {
            let secret = std::env::var(&set.client_secret_env).with_context(|| {
                format!(
                    "the Azure client secret is read from ${}, which is not set",
                    set.client_secret_env
                )
            })?;
            Ok(serde_json::json!({
                "tenant_id": set.tenant_id.as_deref().context("--tenant-id is required for azure")?,
                "client_id": set.client_id.as_deref().context("--client-id is required for azure")?,
                "client_secret": secret,
            })
            .to_string())
        }
        OtherCloud::Gcp => {
            let path = set
                .key_file
                .as_ref()
                .context("--key-file is required for gcp")?;
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let key: serde_json::Value = serde_json::from_str(&text)
                .with_context(|| format!("{} is not a service account JSON key", path.display()))?;
            if key.get("type").and_then(|t| t.as_str()) != Some("service_account") {
                bail!(
                    "{} is not a service account key (its `type` is not `service_account`)",
                    path.display()
                );
            }
            Ok(key.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stack(status: &str) -> StackInfo {
        StackInfo {
            status: StackStatus::from(status),
            status_reason: Some("Resource creation cancelled".into()),
            last_updated: None,
            outputs: BTreeMap::new(),
            parameters: BTreeMap::new(),
        }
    }

    #[test]
    fn the_stack_status_decides_create_update_recreate_or_refusal() {
        let plan =
            |status: Option<&str>| stack_plan("stack escher-extend", status.map(stack).as_ref());
        assert_eq!(plan(None).unwrap(), StackPlan::Create);
        assert_eq!(plan(Some("REVIEW_IN_PROGRESS")).unwrap(), StackPlan::Create);
        assert_eq!(
            plan(Some("ROLLBACK_COMPLETE")).unwrap(),
            StackPlan::Recreate
        );
        for usable in [
            "CREATE_COMPLETE",
            "UPDATE_COMPLETE",
            "UPDATE_ROLLBACK_COMPLETE",
            "IMPORT_COMPLETE",
        ] {
            assert_eq!(plan(Some(usable)).unwrap(), StackPlan::Update, "{usable}");
        }
        let busy = plan(Some("UPDATE_IN_PROGRESS")).unwrap_err().to_string();
        assert!(
            busy.contains("busy (UPDATE_IN_PROGRESS)") && busy.contains("wait"),
            "{busy}"
        );
        let stuck = plan(Some("UPDATE_ROLLBACK_FAILED"))
            .unwrap_err()
            .to_string();
        assert!(
            stuck.contains("continue-update-rollback")
                && stuck.contains("Resource creation cancelled"),
            "{stuck}"
        );
        assert!(plan(Some("DELETE_FAILED")).is_err());
    }

    #[test]
    fn retained_resources_are_read_from_the_template() {
        let template = "Parameters:\n  X:\n    Type: String\nResources:\n  # comment\n  AuditBucket:\n    Type: AWS::S3::Bucket\n    DeletionPolicy: Retain\n    Properties:\n      Foo: 1\n  Topic:\n    Type: AWS::SNS::Topic\n  StateBucket:\n    DeletionPolicy: Retain\nOutputs:\n  A:\n    DeletionPolicy: Retain\n";
        let retained = retained_in_template(template);
        assert_eq!(
            retained.into_iter().collect::<Vec<_>>(),
            ["AuditBucket", "StateBucket"]
        );
    }

    #[test]
    fn the_rendered_template_retains_the_audit_and_state_buckets() {
        let config = EscherConfig::default();
        let template = crate::render::aws::for_deploy(&config, "UTC".parse().expect("tz"), true)
            .expect("render");
        let retained = retained_in_template(&template);
        for id in ["AuditBucket", "StateBucket", "EncryptionKey"] {
            assert!(retained.contains(id), "{id} must be retained: {retained:?}");
        }
        assert!(!retained.contains("AlertFunction"));
    }

    #[test]
    fn create_trail_auto_keeps_the_stacks_trail_and_adds_none_beside_another() {
        let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let keep = TrailDecision::auto(true, names(&["org-trail"]));
        assert_eq!(keep, TrailDecision::KeepStackTrail);
        assert!(keep.creates_trail(), "the stack's trail is not taken away");
        let none = TrailDecision::auto(false, vec![]);
        assert!(none.creates_trail());
        let other = TrailDecision::auto(false, names(&["org-trail"]));
        assert!(!other.creates_trail());
        assert!(other.explain().contains("org-trail"), "{}", other.explain());
        assert!(TrailDecision::Always.creates_trail() && !TrailDecision::Never.creates_trail());
    }

    #[test]
    fn a_no_op_change_set_is_recognised_by_its_reason() {
        assert!(is_no_change_reason(
            "The submitted information didn't contain changes. Submit different information to create a change set."
        ));
        assert!(is_no_change_reason("No updates are to be performed."));
        assert!(!is_no_change_reason("Template format error"));
    }
}
