//! An unhealthy ECS service, given a new deployment (`forceNewDeployment`: the same task
//! definition, every task replaced); verified by the running count back at desired with the
//! old deployment drained.

use escher_core::remediate::{RemediationError, VerificationCheck};

use super::{Ledger, Reading, LEDGER_TAG};
use crate::calls::{Access, CallLog};
use crate::clients::AwsClients;
use crate::ecs_service::{self, describe, tag, Counts};

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
        ledger: tag(&service, LEDGER_TAG)
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
                .ecs()
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
        .unwrap_or_default();
    ecs_service::set_tag(clients, arn, name, LEDGER_TAG, &ledger.value(), log).await
}

pub(super) async fn checks(
    clients: &AwsClients,
    cluster: &str,
    name: &str,
    log: &mut CallLog,
) -> Result<Vec<VerificationCheck>, RemediationError> {
    Ok(Counts::of(&describe(clients, cluster, name, log).await?).checks())
}
