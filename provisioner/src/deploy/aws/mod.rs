//! The AWS side of `extend`, `status`, `destroy` and `credentials`: CloudFormation change
//! sets, the artifacts bucket, Lambda code versions and SSM SecureStrings, behind
//! [`Deployment`].
//!
//! Every AWS call goes through [`session::call`], which turns an SDK error into a message
//! naming the action, the resource and what the user can do (missing credentials, a region
//! that does not answer, AccessDenied with the denied action).

mod artifacts;
mod change_set;
mod credentials;
mod destroy;
mod extend;
mod session;
mod status;

use anyhow::Context as _;

use change_set::{discard_change_set, stack_plan, PendingChangeSet, StackPlan};
use session::{AwsSession, StackInfo};

use super::seam::{
    Current, Deployed, Deployment, DestroyPlan, Preview, PreviewRequest, SecretList, Session,
    Status,
};
use super::{AccessArgs, OtherCloud};
use crate::cloud::Cloud;
use crate::config::EscherConfig;

/// A CloudFormation stack in one account and region.
pub struct AwsDeployment {
    aws: AwsSession,
    session: Session,
    /// The stack as [`Deployment::current`] found it.
    existing: Option<StackInfo>,
    /// What `extend` does with it.
    plan: StackPlan,
    /// The change set of the last preview, until it is executed or discarded.
    pending: Option<PendingChangeSet>,
}

impl Deployment for AwsDeployment {
    const UNIT: &'static str = "stack";
    const PREVIEW: &'static str = "change set";

    async fn connect(access: &AccessArgs, config: EscherConfig) -> anyhow::Result<Self> {
        let aws = session::connect(access, config).await?;
        let session = Session {
            cloud: Cloud::Aws,
            name: aws.stack.clone(),
            account: aws.account.clone(),
            region: aws.region.clone(),
            identity: aws.caller_arn.clone(),
            label: aws.stack_label(),
        };
        Ok(AwsDeployment {
            aws,
            session,
            existing: None,
            plan: StackPlan::Create,
            pending: None,
        })
    }

    fn session(&self) -> &Session {
        &self.session
    }

    async fn current(&mut self) -> anyhow::Result<Current> {
        self.existing = self.aws.describe_stack().await?;
        self.plan = stack_plan(&self.aws.stack_label(), self.existing.as_ref())?;
        let recreate = (self.plan == StackPlan::Recreate).then(|| {
            format!(
                "{} is in ROLLBACK_COMPLETE: its first creation failed{}; it holds no working resources and must be deleted and created again.",
                self.aws.stack_label(),
                self.existing
                    .as_ref()
                    .and_then(|info| info.status_reason.as_deref())
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default()
            )
        });
        Ok(Current {
            deployed: self.existing.as_ref().map(StackInfo::deployed),
            recreate,
        })
    }

    async fn remove_failed(&mut self) -> anyhow::Result<()> {
        destroy::delete_stack_and_wait(&self.aws).await?;
        self.existing = None;
        self.plan = StackPlan::Create;
        Ok(())
    }

    async fn preview(&mut self, request: &PreviewRequest<'_>) -> anyhow::Result<Preview> {
        let (preview, pending) =
            extend::preview(&self.aws, self.plan, self.existing.as_ref(), request).await?;
        self.pending = Some(pending);
        Ok(preview)
    }

    async fn discard(&mut self) {
        if let Some(pending) = self.pending.take() {
            discard_change_set(&self.aws, &pending.name, &pending.kind).await;
        }
    }

    async fn apply(&mut self, preview: &Preview) -> anyhow::Result<Deployed> {
        let pending = self
            .pending
            .take()
            .context("there is no change set to execute (a bug; please report it)")?;
        let info = extend::execute(&self.aws, &pending.name, preview.changes.len()).await?;
        Ok(info.deployed())
    }

    async fn status(&self) -> anyhow::Result<Option<Status>> {
        status::status(&self.aws).await
    }

    async fn destroy_plan(&self, delete_data: bool) -> anyhow::Result<Option<DestroyPlan>> {
        destroy::plan(&self.aws, delete_data).await
    }

    async fn destroy(&self, plan: &DestroyPlan) -> anyhow::Result<()> {
        destroy::destroy(&self.aws, plan).await
    }

    async fn store_secret(&self, cloud: OtherCloud, value: String) -> anyhow::Result<String> {
        credentials::store(&self.aws, cloud, value).await
    }

    async fn list_secrets(&self) -> anyhow::Result<SecretList> {
        credentials::list(&self.aws).await
    }

    async fn remove_secret(&self, cloud: OtherCloud) -> anyhow::Result<String> {
        credentials::remove(&self.aws, cloud).await
    }
}
