//! The Resource Manager client against the stand-in: what ARM asks of a client (Retry-After on
//! 429, `nextLink` pages, both ways of reporting a long-running operation) and errors that say
//! what to do.

mod common;

use std::sync::Arc;

use common::{quick, stand_in, GROUP, SUBSCRIPTION};
use escher_azure::{ArmClient, ArmOperation, HttpMethod};
use escher_test_support::azure_arm::ArmDouble;
use serde_json::json;

const GET_ACCOUNT: ArmOperation = ArmOperation {
    id: "StorageAccounts_GetProperties",
    method: HttpMethod::Get,
    api_version: "2023-05-01",
    permission: "Microsoft.Storage/storageAccounts/read",
};
const LIST_CONTAINERS: ArmOperation = ArmOperation {
    id: "BlobContainers_List",
    method: HttpMethod::Get,
    api_version: "2023-05-01",
    permission: "Microsoft.Storage/storageAccounts/blobServices/containers/read",
};
const DEALLOCATE: ArmOperation = ArmOperation {
    id: "VirtualMachines_Deallocate",
    method: HttpMethod::Post,
    api_version: "2024-07-01",
    permission: "Microsoft.Compute/virtualMachines/deallocate/action",
};
const DELETE_RULE: ArmOperation = ArmOperation {
    id: "SecurityRules_Delete",
    method: HttpMethod::Delete,
    api_version: "2024-05-01",
    permission: "Microsoft.Network/networkSecurityGroups/securityRules/delete",
};

fn statuses(double: &ArmDouble) -> Vec<u16> {
    double.requests().iter().map(|r| r.status).collect()
}

#[tokio::test]
async fn throttling_is_waited_out_as_retry_after_asks() {
    let (double, arm) = stand_in().await;
    let account = double.storage_account(SUBSCRIPTION, GROUP, "throttled", Some(false));
    double.throttle(2, 0);
    let resource = arm
        .call(&GET_ACCOUNT, &account, &[], None)
        .await
        .expect("answered after two 429s");
    assert_eq!(resource["name"], "throttled");
    assert_eq!(statuses(&double), [429, 429, 200]);
}

#[tokio::test]
async fn throttling_past_the_attempts_is_a_transient_failure() {
    let (double, arm) = stand_in().await;
    let account = double.storage_account(SUBSCRIPTION, GROUP, "busy", Some(false));
    double.throttle(10, 0);
    let error = arm
        .call(&GET_ACCOUNT, &account, &[], None)
        .await
        .expect_err("still throttled");
    assert!(error.transient, "{error}");
    assert_eq!(error.code(), Some("TooManyRequests"));
    assert_eq!(double.requests().len(), quick().attempts as usize);
}

#[tokio::test]
async fn every_page_of_a_list_is_read() {
    let (double, arm) = stand_in().await;
    let account = double.storage_account(SUBSCRIPTION, GROUP, "paged", Some(false));
    for name in ["a", "b", "c"] {
        double.blob_container(&account, name, "None");
    }
    double.page_size(1);
    let items = arm
        .list(
            &LIST_CONTAINERS,
            &format!("{account}/blobServices/default/containers"),
            &[],
        )
        .await
        .expect("listed");
    let names: Vec<&str> = items.iter().filter_map(|c| c["name"].as_str()).collect();
    assert_eq!(names, ["a", "b", "c"]);
    assert_eq!(double.requests().len(), 3, "one request a page");
    assert!(double.violations().is_empty(), "{:?}", double.violations());
}

#[tokio::test]
async fn a_location_operation_is_polled_until_it_ends() {
    let (double, arm) = stand_in().await;
    let vm = double.vm(SUBSCRIPTION, GROUP, "slow-to-stop", "running");
    double.lro_polls(3);
    arm.call(&DEALLOCATE, &format!("{vm}/deallocate"), &[], None)
        .await
        .expect("deallocated");
    assert_eq!(double.power_state(&vm).as_deref(), Some("deallocated"));
    let polls: Vec<u16> = double
        .requests()
        .iter()
        .filter(|r| r.path.starts_with("/locations/"))
        .map(|r| r.status)
        .collect();
    assert_eq!(
        polls,
        [202, 202, 202, 200],
        "polled until it stopped answering 202"
    );
}

#[tokio::test]
async fn an_async_operation_is_polled_until_it_succeeds() {
    let (double, arm) = stand_in().await;
    let nsg = double.nsg(SUBSCRIPTION, GROUP, "slow-nsg");
    let rule = double.security_rule(
        &nsg,
        "ssh",
        json!({"protocol": "Tcp", "sourcePortRange": "*", "destinationPortRange": "22",
               "sourceAddressPrefix": "*", "destinationAddressPrefix": "*",
               "access": "Allow", "priority": 100, "direction": "Inbound"}),
    );
    double.lro_polls(2);
    arm.call(&DELETE_RULE, &rule, &[], None)
        .await
        .expect("deleted");
    let group = double.resource(&nsg).expect("the group");
    assert_eq!(group["properties"]["securityRules"], json!([]));
    let polls = double
        .requests()
        .iter()
        .filter(|r| r.path.starts_with("/operations/"))
        .count();
    assert_eq!(polls, 3, "two 'InProgress' answers, then 'Succeeded'");
}

#[tokio::test]
async fn a_missing_resource_is_final_and_says_so() {
    let (_double, arm) = stand_in().await;
    let error = arm
        .call(
            &GET_ACCOUNT,
            &format!("/subscriptions/{SUBSCRIPTION}/resourceGroups/{GROUP}/providers/Microsoft.Storage/storageAccounts/gone"),
            &[],
            None,
        )
        .await
        .expect_err("not found");
    assert!(!error.transient);
    assert_eq!(error.code(), Some("ResourceNotFound"));
    assert!(
        error.to_string().contains("may have been deleted"),
        "{error}"
    );
}

#[tokio::test]
async fn a_token_the_endpoint_did_not_issue_is_refused_with_advice() {
    #[derive(Debug)]
    struct Forged;
    #[async_trait::async_trait]
    impl azure_core::credentials::TokenCredential for Forged {
        async fn get_token(
            &self,
            _: &[&str],
            _: Option<azure_core::credentials::TokenRequestOptions<'_>>,
        ) -> azure_core::Result<azure_core::credentials::AccessToken> {
            Ok(azure_core::credentials::AccessToken::new(
                "forged".to_string(),
                azure_core::time::OffsetDateTime::now_utc() + azure_core::time::Duration::hours(1),
            ))
        }
    }
    let double = ArmDouble::start().await;
    let account = double.storage_account(SUBSCRIPTION, GROUP, "guarded", Some(false));
    let arm = ArmClient::new(double.endpoint(), Arc::new(Forged)).with_patience(quick());
    let error = arm
        .call(&GET_ACCOUNT, &account, &[], None)
        .await
        .expect_err("refused");
    assert!(!error.transient);
    assert_eq!(error.status, Some(401));
    assert!(error.to_string().contains("Escher role"), "{error}");
}
