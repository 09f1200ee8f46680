//! An unhealthy ECS service, given a new deployment (`forceNewDeployment`: the same task
//! definition, every task replaced); verified by the running count back at desired with the
//! old deployment drained.

use aws_sdk_ecs::types::{Service, ServiceField, Tag};
use escher_core::remediate::{RemediationError, VerificationCheck};
use escher_core::UnifiedEvent;

use super::{Ledger, Reading, LEDGER_TAG};
use crate::calls::{Access, CallError, CallLog};
use crate::clients::AwsClients;
use crate::report::check;

/// The cluster and service names from the service's ARN (`service/<cluster>/<name>`, or the
/// older `service/<name>` with the cluster from the event, else `default`).
pub(super) fn names(event: &UnifiedEvent) -> Option<(String, String)> {
    let rest = event.resource.id.split_once(":service/")?.1;
    match rest.split_once('/') {
        Some((cluster, service)) if !cluster.is_empty() && !service.is_empty() => {
            Some((cluster.to_string(), service.to_string()))
        }
        None if !rest.is_empty() => {
            let cluster = crate::alarms::metadata_text(event, "cluster_arn")
                .rsplit_once("cluster/")
                .map(|(_, name)| name)
                .filter(|n| !n.is_empty())
                .unwrap_or("default");
            Some((cluster.to_string(), rest.to_string()))
        }
        _ => None,
    }
}

async fn describe(
    clients: &AwsClients,
    cluster: &str,
    name: &str,
    log: &mut CallLog,
) -> Result<Service, RemediationError> {
    let out = log
        .must(
            "ecs",
            "DescribeServices",
            name,
            Access::Read,
            clients
                .ecs
                .describe_services()
                .cluster(cluster)
                .services(name)
                .include(ServiceField::Tags)
                .send(),
        )
        .await?;
    out.services()
        .iter()
        .find(|s| s.service_name() == Some(name))
        .cloned()
        .ok_or_else(|| {
            log.fail(CallError {
                operation: "DescribeServices",
                target: name.to_string(),
                code: None,
                transient: false,
                message: format!(
                    "service {name} was not found in cluster {cluster} (deleted since the alert?)"
                ),
            })
        })
}

/// `running/desired` and the deployments, as ECS reports them now.
struct Counts {
    running: i32,
    desired: i32,
    deployments: usize,
}

impl Counts {
    fn of(service: &Service) -> Counts {
        Counts {
            running: service.running_count(),
            desired: service.desired_count(),
            deployments: service.deployments().len(),
        }
    }

    fn steady(&self) -> bool {
        self.running >= self.desired && self.deployments <= 1
    }

    fn words(&self) -> String {
        format!(
            "{} of {} tasks running, {} deployment(s)",
            self.running, self.desired, self.deployments
        )
    }
}

pub(super) async fn read(
    clients: &AwsClients,
    cluster: &str,
    name: &str,
    log: &mut CallLog,
) -> Result<Reading, RemediationError> {
    let service = describe(clients, cluster, name, log).await?;
    let counts = Counts::of(&service);
    let status = service.status().unwrap_or_default();
    Ok(Reading {
        what: format!("service {name} (cluster {cluster})"),
        ledger: service
            .tags()
            .iter()
            .find(|t| t.key() == Some(LEDGER_TAG))
            .and_then(|t| t.value())
            .map(Ledger::parse)
            .unwrap_or_default(),
        healthy: counts.steady().then(|| counts.words()),
        not_now: (status != "ACTIVE")
            .then(|| format!("it is {status}, not ACTIVE"))
            .or_else(|| (counts.desired == 0).then(|| "it is scaled to 0 tasks".to_string())),
    })
}

pub(super) async fn restart(
    clients: &AwsClients,
    cluster: &str,
    name: &str,
    ledger: &Ledger,
    log: &mut CallLog,
) -> Result<(), RemediationError> {
    let updated = log
        .must(
            "ecs",
            "UpdateService",
            name,
            Access::Write,
            clients
                .ecs
                .update_service()
                .cluster(cluster)
                .service(name)
                .force_new_deployment(true)
                .send(),
        )
        .await?;
    let arn = updated
        .service()
        .and_then(|s| s.service_arn())
        .unwrap_or_default()
        .to_string();
    log.must(
        "ecs",
        "TagResource",
        name,
        Access::Write,
        clients
            .ecs
            .tag_resource()
            .resource_arn(arn)
            .tags(Tag::builder().key(LEDGER_TAG).value(ledger.value()).build())
            .send(),
    )
    .await?;
    Ok(())
}

pub(super) async fn checks(
    clients: &AwsClients,
    cluster: &str,
    name: &str,
    log: &mut CallLog,
) -> Result<Vec<VerificationCheck>, RemediationError> {
    let counts = Counts::of(&describe(clients, cluster, name, log).await?);
    Ok(vec![
        check(
            "running tasks",
            format!("{} (the desired count)", counts.desired),
            counts.running.to_string(),
            counts.running >= counts.desired,
        ),
        check(
            "deployments",
            "one (the new one; the old drained)",
            counts.deployments.to_string(),
            counts.deployments <= 1,
        ),
    ])
}
