//! The Function's managed identity, end to end: `azure_identity`'s credential finds the App
//! Service identity endpoint from `IDENTITY_ENDPOINT` / `IDENTITY_HEADER` (as the Functions
//! host sets them), and Resource Manager accepts the token it issued. One test in this binary,
//! since the endpoint is read from the process environment.

mod common;

use common::{quick, GROUP, SUBSCRIPTION};
use escher_azure::{ArmClient, ArmOperation, HttpMethod};
use escher_test_support::azure_arm::ArmDouble;

#[tokio::test]
async fn the_managed_identity_token_opens_resource_manager() {
    let double = ArmDouble::start().await;
    // SAFETY: the only test in this binary; nothing else reads the environment concurrently.
    unsafe { double.serve_identity_to_this_process() };
    let credential = escher_azure::managed_identity().expect("a managed identity credential");
    let arm = ArmClient::new(double.endpoint(), credential).with_patience(quick());
    let account = double.storage_account(SUBSCRIPTION, GROUP, "identity", Some(false));
    let get = ArmOperation {
        id: "StorageAccounts_GetProperties",
        method: HttpMethod::Get,
        api_version: "2023-05-01",
        permission: "Microsoft.Storage/storageAccounts/read",
    };
    for _ in 0..2 {
        let resource = arm
            .call(&get, &account, &[], None)
            .await
            .expect("authorized");
        assert_eq!(resource["name"], "identity");
    }
    let token_requests = double
        .requests()
        .iter()
        .filter(|r| r.path == "/msi/token")
        .count();
    assert_eq!(token_requests, 1, "the token is cached between calls");
}
