//! ECS on moto: a cluster with one service of `desired` tasks. moto starts none of them
//! (its running count stays 0) until the desired count is set again, when it reports them
//! all running: [`settle`] plays ECS bringing a service's tasks up.

use aws_sdk_ecs::types::ContainerDefinition;
use aws_sdk_ecs::Client;

use super::sdk_error;
use crate::names::unique;

/// A service of `desired` tasks in a cluster of its own; returns (cluster, service name,
/// service ARN).
pub async fn service(ecs: &Client, desired: i32) -> Result<(String, String, String), String> {
    service_with_revisions(ecs, 1, desired).await
}

/// The service's tasks all running, as ECS reports once it brought them up.
pub async fn settle(ecs: &Client, cluster: &str, name: &str) -> Result<(), String> {
    let desired = counts(ecs, cluster, name).await?.1;
    ecs.update_service()
        .cluster(cluster)
        .service(name)
        .desired_count(desired)
        .send()
        .await
        .map_err(|e| sdk_error(&format!("UpdateService {name}"), e))?;
    Ok(())
}

/// (running, desired, the primary deployment's id).
pub async fn counts(ecs: &Client, cluster: &str, name: &str) -> Result<(i32, i32, String), String> {
    let out = ecs
        .describe_services()
        .cluster(cluster)
        .services(name)
        .send()
        .await
        .map_err(|e| sdk_error(&format!("DescribeServices {name}"), e))?;
    let service = out
        .services()
        .first()
        .ok_or_else(|| format!("no service {name}"))?;
    let deployment = service
        .deployments()
        .first()
        .and_then(|d| d.id())
        .unwrap_or_default()
        .to_string();
    Ok((service.running_count(), service.desired_count(), deployment))
}

/// A service on the last of `revisions` revisions of one task-definition family, in a
/// cluster of its own; returns (cluster, service name, service ARN).
pub async fn service_with_revisions(
    ecs: &Client,
    revisions: u32,
    desired: i32,
) -> Result<(String, String, String), String> {
    let cluster = unique("escher-cluster");
    ecs.create_cluster()
        .cluster_name(&cluster)
        .send()
        .await
        .map_err(|e| sdk_error(&format!("CreateCluster {cluster}"), e))?;
    let family = unique("escher-task");
    for revision in 1..=revisions.max(1) {
        ecs.register_task_definition()
            .family(&family)
            .container_definitions(
                ContainerDefinition::builder()
                    .name("web")
                    .image(format!("public.ecr.aws/nginx/nginx:1.{revision}"))
                    .memory(128)
                    .essential(true)
                    .build(),
            )
            .send()
            .await
            .map_err(|e| sdk_error(&format!("RegisterTaskDefinition {family}"), e))?;
    }
    let name = unique("escher-svc");
    let out = ecs
        .create_service()
        .cluster(&cluster)
        .service_name(&name)
        .task_definition(&family)
        .desired_count(desired)
        .send()
        .await
        .map_err(|e| sdk_error(&format!("CreateService {name}"), e))?;
    let arn = out
        .service()
        .and_then(|s| s.service_arn())
        .ok_or_else(|| format!("CreateService {name} returned no ARN"))?
        .to_string();
    Ok((cluster, name, arn))
}

/// The task definition the service runs now.
pub async fn task_definition(ecs: &Client, cluster: &str, name: &str) -> Result<String, String> {
    let out = ecs
        .describe_services()
        .cluster(cluster)
        .services(name)
        .send()
        .await
        .map_err(|e| sdk_error(&format!("DescribeServices {name}"), e))?;
    out.services()
        .first()
        .and_then(|s| s.task_definition())
        .map(str::to_string)
        .ok_or_else(|| format!("no service {name}"))
}
