//! The answer for an action AWS has no fix for yet (`scale_up_capacity`, `restart_service`,
//! `rollback_deployment`, or a known action on another resource type): a `NotSupported`
//! report the pipeline audits and notifies like any other outcome, never an error.

use async_trait::async_trait;
use escher_core::approvals::Action;
use escher_core::remediate::{
    Remediation, RemediationError, RemediationReport, RemediationRequest, RemediationStatus,
    RequiredPermission,
};

/// Reports that `action` cannot be applied here; makes no API call.
#[derive(Debug, Clone, Copy)]
pub struct UnsupportedRemediation {
    action: Action,
}

impl UnsupportedRemediation {
    pub fn new(action: Action) -> Self {
        UnsupportedRemediation { action }
    }
}

#[async_trait]
impl Remediation for UnsupportedRemediation {
    fn action(&self) -> Action {
        self.action
    }

    fn resource_types(&self) -> &'static [&'static str] {
        &[]
    }

    fn required_permissions(&self) -> &'static [RequiredPermission] {
        &[]
    }

    async fn remediate(
        &self,
        request: &RemediationRequest<'_>,
    ) -> Result<RemediationReport, RemediationError> {
        let resource = &request.event.resource;
        let kind = if resource.kind.is_empty() {
            "this resource"
        } else {
            resource.kind.as_str()
        };
        Ok(RemediationReport {
            action: request.action,
            resource_id: resource.id.clone(),
            status: RemediationStatus::NotSupported,
            summary: format!(
                "{} is not supported yet for {kind}; nothing was changed.",
                request.action
            ),
            steps: Vec::new(),
            api_calls: Vec::new(),
            verification: None,
            created: Vec::new(),
            next_steps: vec![format!(
                "Handle {} by hand: {} is approved but Escher cannot apply it to {kind} yet.",
                if resource.name.is_empty() {
                    &resource.id
                } else {
                    &resource.name
                },
                request.action
            )],
            undo: None,
        })
    }
}
