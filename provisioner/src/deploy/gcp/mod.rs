//! Deploying Escher into a Google Cloud project ([`GcpDeployment`]): the laptop's Google
//! credentials ([`access`]), the project readied ([`bootstrap`]), the handler's image
//! ([`image`]) and the rendered Terraform root module run by Infrastructure Manager
//! ([`infra_manager`]), previewed as the change table every cloud prints, then applied.

pub mod access;
pub mod bootstrap;
mod deployment;
pub mod image;
pub mod infra_manager;

pub use deployment::GcpDeployment;

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;
    use std::time::Duration;

    use escher_gcp::rest::{Endpoints, GcpClient, StaticToken};
    use escher_test_support::gcp_infra_manager::{
        Blueprint as Plan, InfraManagerApi, PlannedResource, TerraformError,
    };
    use serde_json::json;

    use super::infra_manager::{Blueprint, DeletePolicy, InfraManager, InfraManagerError, Waiting};
    use crate::deploy::seam::{ChangeKind, Replacement};

    const SOURCE: &str = "gs://shop-prod-4711-escher-blueprints/escher/r1/";
    const DEPLOYMENT: &str = "projects/shop-prod-4711/locations/europe-west1/deployments/escher";

    fn manager(api: &InfraManagerApi) -> InfraManager {
        let client = GcpClient::new(
            Endpoints::all_at(api.endpoint()),
            Arc::new(StaticToken::new(InfraManagerApi::TEST_TOKEN)),
        );
        InfraManager::new(client, "shop-prod-4711", "europe-west1").with_waiting(Waiting {
            poll_every: Duration::from_millis(5),
            give_up_after: Duration::from_secs(30),
        })
    }

    fn blueprint(source: &str) -> Blueprint {
        Blueprint {
            gcs_source: source.to_string(),
            inputs: BTreeMap::from([
                ("project".to_string(), json!("shop-prod-4711")),
                ("image".to_string(), json!("europe-west1-docker.pkg.dev/shop-prod-4711/escher/handler@sha256:ab12")),
            ]),
            service_account: "projects/shop-prod-4711/serviceAccounts/escher-deployer@shop-prod-4711.iam.gserviceaccount.com".into(),
        }
    }

    fn first_plan() -> Plan {
        Plan {
            resources: vec![
                PlannedResource::new("google_storage_bucket.state", "v1"),
                PlannedResource::new("google_storage_bucket.audit", "v1"),
                PlannedResource::new("google_cloud_run_v2_service.handler", "image-1"),
                PlannedResource::new("google_pubsub_topic.alerts", "v1"),
            ],
            outputs: BTreeMap::from([
                (
                    "service_url".to_string(),
                    json!("https://escher-handler-abc-ew.a.run.app"),
                ),
                (
                    "audit_bucket".to_string(),
                    json!("shop-prod-4711-escher-audit"),
                ),
            ]),
            ..Plan::default()
        }
    }

    #[tokio::test]
    async fn a_first_deployment_previews_every_resource_as_created_then_applies_with_outputs() {
        let api = InfraManagerApi::start().await;
        api.lro_polls(3);
        api.blueprint(SOURCE, first_plan());
        let im = manager(&api);
        assert_eq!(im.deployment("escher").await.expect("get"), None);

        let mut steps = Vec::new();
        let planned = im
            .preview("escher", false, &blueprint(SOURCE), &mut |s| {
                steps.push(s.to_string())
            })
            .await
            .expect("preview");
        assert_eq!(planned.changes.len(), 4);
        assert!(planned.changes.iter().all(|c| c.action == ChangeKind::Add));
        assert_eq!(planned.unchanged, 0);
        let rows: Vec<&str> = planned
            .changes
            .iter()
            .map(|c| c.logical_id.as_str())
            .collect();
        assert!(rows.contains(&"google_storage_bucket.audit"), "{rows:?}");
        assert!(steps.contains(&"terraform plan".to_string()), "{steps:?}");
        im.delete_preview(&planned.preview)
            .await
            .expect("delete preview");
        assert!(api.previews().is_empty(), "the preview is left behind");

        let mut steps = Vec::new();
        let (state, outputs) = im
            .apply("escher", false, &blueprint(SOURCE), &mut |s| {
                steps.push(s.to_string())
            })
            .await
            .expect("apply");
        assert_eq!(state.state, "ACTIVE");
        assert_eq!(
            outputs["service_url"],
            "https://escher-handler-abc-ew.a.run.app"
        );
        assert!(steps.contains(&"terraform apply".to_string()), "{steps:?}");
        assert_eq!(api.deployed_resources(DEPLOYMENT).len(), 4);

        let create = api
            .requests()
            .into_iter()
            .find(|r| {
                r.operation.as_deref() == Some("config.projects.locations.deployments.create")
            })
            .expect("a create call");
        assert!(create
            .query
            .contains(&("deploymentId".into(), "escher".into())));
        let body = create.body.expect("a body");
        assert_eq!(body["terraformBlueprint"]["gcsSource"], SOURCE);
        assert_eq!(
            body["terraformBlueprint"]["inputValues"]["project"]["inputValue"],
            "shop-prod-4711"
        );
        assert_eq!(body["tfVersionConstraint"], "<= 1.5.7");
        assert!(api.violations().is_empty(), "{:?}", api.violations());
    }

    #[tokio::test]
    async fn an_update_shows_only_what_changes_and_a_replacement_as_such() {
        let api = InfraManagerApi::start().await;
        api.blueprint(SOURCE, first_plan());
        let im = manager(&api);
        im.apply("escher", false, &blueprint(SOURCE), &mut |_| {})
            .await
            .expect("first apply");

        let second = "gs://shop-prod-4711-escher-blueprints/escher/r2/";
        let mut plan = first_plan();
        plan.resources[2] = PlannedResource::new("google_cloud_run_v2_service.handler", "image-2");
        plan.resources[3] = PlannedResource::new("google_pubsub_topic.alerts", "v2");
        plan.replaced.insert("google_pubsub_topic.alerts".into());
        plan.resources.remove(0);
        api.blueprint(second, plan);
        api.page_size(1);

        let planned = im
            .preview("escher", true, &blueprint(second), &mut |_| {})
            .await
            .expect("preview");
        let table: Vec<(ChangeKind, &str, Replacement)> = planned
            .changes
            .iter()
            .map(|c| (c.action, c.logical_id.as_str(), c.replacement))
            .collect();
        assert_eq!(
            table,
            vec![
                (
                    ChangeKind::Modify,
                    "google_cloud_run_v2_service.handler",
                    Replacement::No
                ),
                (
                    ChangeKind::Modify,
                    "google_pubsub_topic.alerts",
                    Replacement::Yes
                ),
                (
                    ChangeKind::Remove,
                    "google_storage_bucket.state",
                    Replacement::No
                ),
            ]
        );
        assert_eq!(planned.unchanged, 1, "the audit bucket stays as it is");
        let preview = api
            .requests()
            .into_iter()
            .find(|r| r.operation.as_deref() == Some("config.projects.locations.previews.create"))
            .and_then(|r| r.body)
            .expect("a preview body");
        assert_eq!(preview["deployment"], DEPLOYMENT);

        // The same blueprint again: nothing to apply.
        im.apply("escher", true, &blueprint(second), &mut |_| {})
            .await
            .expect("update");
        let again = im
            .preview("escher", true, &blueprint(second), &mut |_| {})
            .await
            .expect("preview");
        assert!(again.changes.is_empty(), "{:?}", again.changes);
        assert!(api.violations().is_empty(), "{:?}", api.violations());
    }

    #[tokio::test]
    async fn a_failed_apply_names_the_resources_and_googles_reasons() {
        let api = InfraManagerApi::start().await;
        api.blueprint(SOURCE, first_plan());
        api.fail_next_apply(vec![TerraformError {
            resource_address: "google_cloud_run_v2_service.handler".into(),
            http_response_code: 403,
            description: "Error creating Service: googleapi: Error 403: Permission 'iam.serviceaccounts.actAs' denied on service account escher-handler@shop-prod-4711.iam.gserviceaccount.com".into(),
        }]);
        let im = manager(&api);
        let error = im
            .apply("escher", false, &blueprint(SOURCE), &mut |_| {})
            .await
            .expect_err("the apply fails");
        let text = error.to_string();
        assert!(matches!(error, InfraManagerError::Failed { .. }), "{text}");
        assert!(
            text.contains("the creation of deployment escher failed"),
            "{text}"
        );
        assert!(
            text.contains("google_cloud_run_v2_service.handler: HTTP 403"),
            "{text}"
        );
        assert!(text.contains("iam.serviceaccounts.actAs"), "{text}");
        let state = im
            .deployment("escher")
            .await
            .expect("get")
            .expect("a deployment");
        assert_eq!(state.state, "FAILED");
    }

    #[tokio::test]
    async fn a_blueprint_that_cannot_be_read_fails_the_preview_and_leaves_no_preview() {
        let api = InfraManagerApi::start().await;
        let im = manager(&api);
        let error = im
            .preview(
                "escher",
                false,
                &blueprint("gs://nowhere/escher/"),
                &mut |_| {},
            )
            .await
            .expect_err("nothing to download");
        let text = error.to_string();
        assert!(
            text.contains("the preview of deployment escher failed"),
            "{text}"
        );
        assert!(text.contains("gs://nowhere/escher/"), "{text}");
        assert!(api.previews().is_empty(), "a failed preview is left behind");
        assert!(api.violations().is_empty(), "{:?}", api.violations());
    }

    #[tokio::test]
    async fn destroy_deletes_the_deployment_and_a_missing_one_is_already_gone() {
        let api = InfraManagerApi::start().await;
        api.blueprint(SOURCE, first_plan());
        let im = manager(&api);
        im.apply("escher", false, &blueprint(SOURCE), &mut |_| {})
            .await
            .expect("apply");
        let mut steps = Vec::new();
        im.delete("escher", &mut |s| steps.push(s.to_string()))
            .await
            .expect("delete");
        assert!(api.deployment(DEPLOYMENT).is_none());
        assert!(
            steps.contains(&"terraform destroy".to_string()),
            "{steps:?}"
        );
        let delete = api
            .requests()
            .into_iter()
            .find(|r| {
                r.operation.as_deref() == Some("config.projects.locations.deployments.delete")
            })
            .expect("a delete call");
        assert!(delete
            .query
            .contains(&("deletePolicy".into(), "DELETE".into())));
        im.delete("escher", &mut |_| {})
            .await
            .expect("nothing left to delete");
    }

    #[tokio::test]
    async fn a_deletion_terraform_could_not_finish_names_what_stays_and_abandon_leaves_it() {
        let api = InfraManagerApi::start().await;
        api.blueprint(SOURCE, first_plan());
        let im = manager(&api);
        let (state, _) = im
            .apply("escher", false, &blueprint(SOURCE), &mut |_| {})
            .await
            .expect("apply");
        let revision = state.latest_revision.expect("a revision");
        let resources = im.resources(&revision).await.expect("resources");
        let addresses: Vec<&str> = resources.iter().map(|(a, _, _)| a.as_str()).collect();
        assert_eq!(addresses.len(), 4, "{addresses:?}");
        assert!(resources
            .iter()
            .any(|(a, kind, _)| a == "google_storage_bucket.audit"
                && kind == "google_storage_bucket"));
        assert_eq!(
            state.inputs["image"],
            json!("europe-west1-docker.pkg.dev/shop-prod-4711/escher/handler@sha256:ab12"),
            "the deployment says which image it runs"
        );

        api.fail_next_delete(vec![TerraformError {
            resource_address: "google_storage_bucket.audit".into(),
            http_response_code: 409,
            description: "The bucket you tried to delete is not empty.".into(),
        }]);
        let error = im
            .delete("escher", &mut |_| {})
            .await
            .expect_err("the audit bucket stays");
        let text = error.to_string();
        assert!(
            text.contains("google_storage_bucket.audit: HTTP 409"),
            "{text}"
        );
        assert_eq!(
            api.deployed_resources(DEPLOYMENT),
            vec!["google_storage_bucket.audit"]
        );

        im.delete_as("escher", DeletePolicy::Abandon, &mut |_| {})
            .await
            .expect("abandoned");
        assert!(api.deployment(DEPLOYMENT).is_none());
        assert_eq!(api.abandoned(), vec!["google_storage_bucket.audit"]);
        let abandon = api
            .requests()
            .into_iter()
            .rev()
            .find(|r| {
                r.operation.as_deref() == Some("config.projects.locations.deployments.delete")
            })
            .expect("a delete call");
        assert!(abandon
            .query
            .contains(&("deletePolicy".into(), "ABANDON".into())));
        assert!(api.violations().is_empty(), "{:?}", api.violations());
    }

    #[tokio::test]
    async fn an_operation_that_outlasts_the_wait_says_it_goes_on_at_google() {
        let api = InfraManagerApi::start().await;
        api.blueprint(SOURCE, first_plan());
        api.lro_polls(1_000);
        let im = manager(&api).with_waiting(Waiting {
            poll_every: Duration::from_millis(1),
            give_up_after: Duration::from_millis(30),
        });
        let error = im
            .apply("escher", false, &blueprint(SOURCE), &mut |_| {})
            .await
            .expect_err("still running");
        let text = error.to_string();
        assert!(
            matches!(error, InfraManagerError::StillRunning { .. }),
            "{text}"
        );
        assert!(
            text.contains("escher-provision status --cloud gcp"),
            "{text}"
        );
    }
}
