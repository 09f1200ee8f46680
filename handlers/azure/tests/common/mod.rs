//! What the Azure tests share: the Resource Manager stand-in with a client for it, and the
//! Event Grid event a change to a resource raises, normalized as the handler would.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};
use chrono::Utc;
use escher_azure::{ArmClient, Patience};
use escher_core::approvals::{Action, Approval, ApprovalStore, Change, Conditions, Scope};
use escher_core::{CloudProvider, Normalized, UnifiedEvent};
use escher_test_support::azure_arm::ArmDouble;
use serde_json::json;

pub const SUBSCRIPTION: &str = "6f1c2d3e-4a5b-4c6d-8e7f-901a2b3c4d5e";
pub const GROUP: &str = "payments-prod";

/// The token the stand-in accepts without an identity endpoint.
#[derive(Debug)]
pub struct TestToken;

#[async_trait::async_trait]
impl TokenCredential for TestToken {
    async fn get_token(
        &self,
        _scopes: &[&str],
        _options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        Ok(AccessToken::new(
            ArmDouble::TEST_TOKEN.to_string(),
            azure_core::time::OffsetDateTime::now_utc() + azure_core::time::Duration::hours(1),
        ))
    }
}

/// Approves making any public Azure storage account private (`make_bucket_private`, every
/// Azure resource), as `who` in the approvals store at `uri`.
pub async fn approve_private_storage(uri: &str, who: &str) -> Result<(), String> {
    let approval = Approval {
        id: "apr-azure-storage".into(),
        action: Action::MakeBucketPrivate,
        scope: Scope {
            clouds: vec![CloudProvider::Azure],
            ..Scope::default()
        },
        conditions: Conditions::default(),
        approved_by: who.into(),
        approved_at: Utc::now() - chrono::Duration::minutes(5),
        expires_at: None,
        reason: "our storage accounts are never public".into(),
        revoked_at: None,
        revoked_by: None,
        revoke_reason: None,
    };
    ApprovalStore::open(uri)
        .map_err(|e| format!("the approvals store {uri}: {e}"))?
        .apply(
            &Change::Init {
                approvals: vec![approval],
            },
            who,
        )
        .await
        .map(|_| ())
        .map_err(|e| format!("approving in {uri}: {e}"))
}

/// Short waits: the stand-in's long-running operations end after a poll or two.
pub fn quick() -> Patience {
    Patience {
        attempts: 4,
        poll_interval: Duration::from_millis(10),
        max_wait: Duration::from_millis(50),
        operation_timeout: Duration::from_secs(20),
    }
}

pub async fn stand_in() -> (ArmDouble, ArmClient) {
    let double = ArmDouble::start().await;
    let client = ArmClient::new(double.endpoint(), Arc::new(TestToken)).with_patience(quick());
    (double, client)
}

/// The Event Grid `ResourceWriteSuccess` a change to `id` raises, normalized.
pub fn write_event(id: &str, operation: &str) -> UnifiedEvent {
    let payload = json!([{
        "topic": format!("/subscriptions/{SUBSCRIPTION}"),
        "subject": id,
        "eventType": "Microsoft.Resources.ResourceWriteSuccess",
        "eventTime": "2026-12-03T09:12:44.1234567Z",
        "id": format!("write-{}", id.len()),
        "data": {
            "authorization": {"scope": id, "action": operation},
            "resourceProvider": id.split("/providers/").nth(1).and_then(|p| p.split('/').next()).unwrap_or_default(),
            "resourceUri": id,
            "operationName": operation,
            "status": "Succeeded",
            "subscriptionId": SUBSCRIPTION,
            "tenantId": "72f988bf-86f1-41af-91ab-2d7cd011db47"
        },
        "dataVersion": "2",
        "metadataVersion": "1"
    }]);
    match escher_core::normalize(payload.to_string().as_bytes()) {
        Ok(Normalized::Events(mut events)) if events.len() == 1 => events.remove(0),
        other => panic!("expected one event for {id}, got {other:?}"),
    }
}
