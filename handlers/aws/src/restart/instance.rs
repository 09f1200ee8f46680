//! An EC2 instance failing its own status check, rebooted; verified by both status checks
//! passing (the instance's and the system's).

use aws_sdk_ec2::types::{InstanceStateName, SummaryStatus};
use escher_core::remediate::{RemediationError, VerificationCheck};

use super::{Ledger, Reading, LEDGER_TAG};
use crate::calls::{Access, CallError, CallLog};
use crate::clients::AwsClients;
use crate::report::check;

/// The instance's state and its restart ledger; a failing system check or an instance not
/// running is not rebooted.
pub(super) async fn read(
    clients: &AwsClients,
    id: &str,
    log: &mut CallLog,
) -> Result<Reading, RemediationError> {
    let out = log
        .must(
            "ec2",
            "DescribeInstances",
            id,
            Access::Read,
            clients.ec2().describe_instances().instance_ids(id).send(),
        )
        .await?;
    let Some(instance) = out
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .find(|i| i.instance_id() == Some(id))
    else {
        return Err(log.fail(CallError {
            operation: "DescribeInstances",
            target: id.to_string(),
            code: None,
            transient: false,
            message: format!("instance {id} was not found (terminated since the alert?)"),
        }));
    };
    let ledger = instance
        .tags()
        .iter()
        .find(|t| t.key() == Some(LEDGER_TAG))
        .and_then(|t| t.value())
        .map(Ledger::parse)
        .unwrap_or_default();
    let state = instance.state().and_then(|s| s.name()).cloned();
    let (_, system) = statuses(clients, id, log).await?;
    let not_now = if state != Some(InstanceStateName::Running) {
        Some(format!(
            "it is {}, not running",
            state
                .as_ref()
                .map(|s| s.as_str())
                .unwrap_or("in no known state")
        ))
    } else if system == Some(SummaryStatus::Impaired) {
        Some("its system status check fails too: that is the host's, a reboot does not help; a stop and start moves it to healthy hardware (instance-store data is lost)".to_string())
    } else {
        None
    };
    Ok(Reading {
        what: format!("instance {id}"),
        ledger,
        // Status checks are read each minute; the alarm (read by the fix) says whether the
        // failure lasted, so a passing check now is not taken as healthy on its own.
        healthy: None,
        not_now,
    })
}

/// The instance's and the system's status check, when EC2 reports them.
async fn statuses(
    clients: &AwsClients,
    id: &str,
    log: &mut CallLog,
) -> Result<(Option<SummaryStatus>, Option<SummaryStatus>), RemediationError> {
    let out = log
        .must(
            "ec2",
            "DescribeInstanceStatus",
            id,
            Access::Read,
            clients
                .ec2()
                .describe_instance_status()
                .instance_ids(id)
                .include_all_instances(true)
                .send(),
        )
        .await?;
    let status = out
        .instance_statuses()
        .iter()
        .find(|s| s.instance_id() == Some(id));
    Ok((
        status
            .and_then(|s| s.instance_status())
            .and_then(|s| s.status())
            .cloned(),
        status
            .and_then(|s| s.system_status())
            .and_then(|s| s.status())
            .cloned(),
    ))
}

pub(super) async fn restart(
    clients: &AwsClients,
    id: &str,
    ledger: &Ledger,
    log: &mut CallLog,
) -> Result<(), RemediationError> {
    log.must(
        "ec2",
        "RebootInstances",
        id,
        Access::Write,
        clients.ec2().reboot_instances().instance_ids(id).send(),
    )
    .await?;
    crate::tags::set_ec2_tag(clients, id, LEDGER_TAG, &ledger.value(), log).await
}

pub(super) async fn checks(
    clients: &AwsClients,
    id: &str,
    log: &mut CallLog,
) -> Result<Vec<VerificationCheck>, RemediationError> {
    let (instance, system) = statuses(clients, id, log).await?;
    let words = |s: &Option<SummaryStatus>| {
        s.as_ref()
            .map(|s| s.as_str().to_string())
            .unwrap_or_else(|| "not reported (the instance is not running)".to_string())
    };
    Ok(vec![
        check(
            "instance status check",
            "ok",
            words(&instance),
            instance == Some(SummaryStatus::Ok),
        ),
        check(
            "system status check",
            "ok",
            words(&system),
            system == Some(SummaryStatus::Ok),
        ),
    ])
}
