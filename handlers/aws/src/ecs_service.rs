//! An ECS service as the fixes that act on one read it: its cluster and name from the
//! event, the service described (with its tags), and its running/desired counts.

use aws_sdk_ecs::types::{Service, ServiceField, Tag};
use escher_core::remediate::RemediationError;
use escher_core::UnifiedEvent;

use crate::calls::{Access, CallError, CallLog};
use crate::clients::AwsClients;

/// The cluster and service names from the service's ARN (`service/<cluster>/<name>`, or the
/// older `service/<name>` with the cluster from the event, else `default`).
pub(crate) fn names(event: &UnifiedEvent) -> Option<(String, String)> {
    let rest = event.resource.id.split_once(":service/")?.1;
    match rest.split_once('/') {
        Some((cluster, service)) if !cluster.is_empty() && !service.is_empty() => {
            Some((cluster.to_string(), service.to_string()))
        }
        None if !rest.is_empty() => {
            let cluster = crate::target::metadata_str(event, "cluster_arn")
                .rsplit_once("cluster/")
                .map(|(_, name)| name)
                .filter(|n| !n.is_empty())
                .unwrap_or("default");
            Some((cluster.to_string(), rest.to_string()))
        }
        _ => None,
    }
}

/// The service, with its tags.
pub(crate) async fn describe(
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
                .ecs()
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

/// The value of the service's tag `key`.
pub(crate) fn tag<'a>(service: &'a Service, key: &str) -> Option<&'a str> {
    service
        .tags()
        .iter()
        .find(|t| t.key() == Some(key))
        .and_then(|t| t.value())
}

/// Sets one tag on the service (`arn`; `name` for the record): what a fix leaves on it.
pub(crate) async fn set_tag(
    clients: &AwsClients,
    arn: &str,
    name: &str,
    key: &str,
    value: &str,
    log: &mut CallLog,
) -> Result<(), RemediationError> {
    log.must(
        "ecs",
        "TagResource",
        name,
        Access::Write,
        clients
            .ecs()
            .tag_resource()
            .resource_arn(arn)
            .tags(Tag::builder().key(key).value(value).build())
            .send(),
    )
    .await?;
    Ok(())
}

/// `running/desired` and the deployments, as ECS reports them now.
pub(crate) struct Counts {
    pub running: i32,
    pub desired: i32,
    pub deployments: usize,
}

impl Counts {
    pub(crate) fn of(service: &Service) -> Counts {
        Counts {
            running: service.running_count(),
            desired: service.desired_count(),
            deployments: service.deployments().len(),
        }
    }

    /// Every task running and one deployment left.
    pub(crate) fn steady(&self) -> bool {
        self.running >= self.desired && self.deployments <= 1
    }

    pub(crate) fn words(&self) -> String {
        format!(
            "{} of {} tasks running, {} deployment(s)",
            self.running, self.desired, self.deployments
        )
    }

    /// The checks of a service that settled: its tasks running, the old deployment drained.
    pub(crate) fn checks(&self) -> Vec<escher_core::remediate::VerificationCheck> {
        vec![
            crate::report::check(
                "running tasks",
                format!("{} (the desired count)", self.desired),
                self.running.to_string(),
                self.running >= self.desired,
            ),
            crate::report::check(
                "deployments",
                "one (the new one; the old drained)",
                self.deployments.to_string(),
                self.deployments <= 1,
            ),
        ]
    }
}
