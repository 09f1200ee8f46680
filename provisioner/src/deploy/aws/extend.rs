//! `extend` on AWS: the preview (whether the stack brings its own trail, the template, the
//! functions' code in the artifacts bucket, a change set read row by row) and executing
//! it, watching the stack's events until it settles.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use aws_sdk_cloudformation::types::{ChangeSetType, StackStatus};

use super::artifacts::{stage_functions, template_source};
use super::change_set::{
    create_change_set, discard_change_set, ChangeSetOutcome, PendingChangeSet, StackPlan,
};
use super::destroy::stack_resources;
use super::session::{AwsSession, StackInfo, STACK_WAIT};
use crate::config::CreateTrail;
use crate::deploy::progress::Progress;
use crate::deploy::seam::{Preview, PreviewKind, PreviewRequest};

/// The preview of `extend` on AWS: the change set, left for [`execute`] or the discard.
/// `existing` is the stack as it was found (`None`: none, or one deleted to be made again).
pub(super) async fn preview(
    session: &AwsSession,
    plan: StackPlan,
    existing: Option<&StackInfo>,
    request: &PreviewRequest<'_>,
) -> anyhow::Result<(Preview, PendingChangeSet)> {
    let progress = |msg: &str| eprintln!("{msg}");
    let change_set_type = match plan {
        StackPlan::Update => ChangeSetType::Update,
        StackPlan::Create | StackPlan::Recreate => ChangeSetType::Create,
    };
    let trail = trail_decision(session, existing.is_some()).await?;
    progress(&trail.explain());
    let (timezone, _) = crate::config::resolve_timezone(request.timezone, &session.config.schedule);
    let template =
        crate::render::aws::for_deploy(&session.config, timezone, trail.creates_trail())?;
    let staged = stage_functions(session, request.artifacts, request.build).await?;
    let template_source = template_source(session, &staged.bucket, &template).await?;
    let kind = if change_set_type == ChangeSetType::Create {
        PreviewKind::Create
    } else {
        PreviewKind::Update
    };
    let (pending, outcome) = create_change_set(
        session,
        change_set_type,
        &template_source,
        &staged.parameter_values,
    )
    .await?;
    let changed_parameters: Vec<String> = match existing {
        Some(info) => staged
            .parameter_values
            .iter()
            .filter(|(k, v)| info.parameters.get(*k) != Some(*v))
            .map(|(k, _)| k.clone())
            .collect(),
        None => Vec::new(),
    };
    let outcome = match outcome {
        // CloudFormation lists the resources a parameter change touches; an implementation
        // that lists none for a changed parameter (moto) must still apply it.
        ChangeSetOutcome::Ready(changes) if changes.is_empty() && changed_parameters.is_empty() => {
            ChangeSetOutcome::NoChanges
        }
        other => other,
    };
    let (changes, up_to_date) = match outcome {
        ChangeSetOutcome::NoChanges => (Vec::new(), true),
        ChangeSetOutcome::Failed(reason) => {
            discard_change_set(session, &pending.name, &pending.kind).await;
            bail!(
                "CloudFormation could not prepare the change for {}: {reason}",
                session.stack_label()
            );
        }
        ChangeSetOutcome::Ready(changes) => (changes, false),
    };
    let preview = Preview {
        kind,
        changes,
        changed_parameters,
        uploaded: staged.uploaded,
        up_to_date,
    };
    Ok((preview, pending))
}

/// Executes the change set and watches the stack until it settles (`total`: the resources
/// it changes). A failure names the failing resources and CloudFormation's reasons.
pub(super) async fn execute(
    session: &AwsSession,
    change_set_name: &str,
    total: usize,
) -> anyhow::Result<StackInfo> {
    let started = aws_sdk_cloudformation::primitives::DateTime::from(std::time::SystemTime::now());
    let executed = session
        .cfn
        .execute_change_set()
        .stack_name(&session.stack)
        .change_set_name(change_set_name)
        .send()
        .await;
    if let Err(e) = session.call(
        executed,
        "cloudformation:ExecuteChangeSet",
        &session.stack_label(),
    ) {
        // moto applies the change inside ExecuteChangeSet and returns a failing resource's
        // error here; real CloudFormation reports it through the stack events below.
        let events = failure_events(session, started).await.unwrap_or_default();
        bail!("deploying {} failed: {e}{}", session.stack_label(), events);
    }
    let info = watch_stack(session, total, started).await?;
    let failed = is_failure(&info.status);
    if failed {
        let events = failure_events(session, started).await.unwrap_or_default();
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
    Ok(info)
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
pub(super) async fn trail_decision(
    session: &AwsSession,
    stack_exists: bool,
) -> anyhow::Result<TrailDecision> {
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

pub(super) fn is_failure(status: &StackStatus) -> bool {
    let s = status.as_str();
    s.ends_with("_FAILED") || s.contains("ROLLBACK")
}

/// Polls the stack until it leaves `*_IN_PROGRESS`, showing its events as they come.
pub(super) async fn watch_stack(
    session: &AwsSession,
    total: usize,
    since: aws_sdk_cloudformation::primitives::DateTime,
) -> anyhow::Result<StackInfo> {
    let mut progress = Progress::start(total);
    let mut seen = HashSet::new();
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
            progress.event(
                line,
                &event.logical_id,
                event.status.ends_with("_COMPLETE") && event.logical_id != session.stack,
            );
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
    progress.finish();
    Ok(info)
}

pub(super) struct Event {
    logical_id: String,
    resource_type: String,
    status: String,
    reason: Option<String>,
}

/// Events newer than `since` not yet shown, oldest first.
pub(super) async fn new_events(
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
pub(super) async fn failure_events(
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
