//! AWS's fixes and checks held to the conformance suite (`escher_core::conformance`) on
//! moto server, through the real AWS SDK for Rust: the rules Azure's and GCP's fixes and
//! checks will be held to on their test doubles.
//!
//! Every fix AWS registers is taken from the registry the pipeline uses, and has a scenario
//! here (AWS has a fix for every action): one that makes a resource needing the fix (unique names, since moto is
//! shared and never reset), builds the event by normalizing the fixture-shaped payload, and
//! changes the resource back as a person would. The permissions a recorded call needs are
//! IAM's (`escher_aws::iam_action`), so the role the provisioner derives from the fixes'
//! declarations is shown to be enough.
//!
//! The checks run in an account of their own holding something for each to report (a
//! public bucket, an unencrypted volume, a group open on 22, an unencrypted database, an
//! idle instance, and a Cost Explorer answer over the budget).
//!
//! `tests/emulators.sh start` writes `ESCHER_TEST_AWS_ENDPOINT`; without it the tests print a
//! notice and return, unless `ESCHER_REQUIRE_EMULATORS=1`, when they fail.

use std::collections::BTreeSet;
use std::sync::Mutex;

use async_trait::async_trait;
use aws_sdk_s3::types::BucketCannedAcl;
use chrono::Duration;
use escher_aws::{aws_fixes, iam_action, AwsClients, AwsScan};
use escher_core::approvals::{Action, Conditions};
use escher_core::conformance::{self, check_fix, FixScenario, ScenarioError};
use escher_core::fixes::FixRegistry;
use escher_core::scan::{ScanContext, ScanThresholds};
use escher_core::{Normalized, UnifiedEvent};
use escher_test_support::cloudformation::{CloudFormationStandIn, StackSeed};
use escher_test_support::fixtures::aws;
use escher_test_support::moto::{
    self as kit, cost, ec2, ecs, rds, s3, Moto, ACCOUNT as MOTO_ACCOUNT,
};
use serde_json::Value;

const REGION: &str = "us-east-1";
const WHAT: &str = "the AWS conformance tests";
/// The tag the volume fix puts on the encrypted copy it makes for an event.
const EVENT_ID_TAG: &str = "escher:event-id";

fn normalized(payload: Value) -> Result<UnifiedEvent, ScenarioError> {
    match escher_core::normalize(payload.to_string().as_bytes())? {
        Normalized::Events(mut events) if events.len() == 1 => Ok(events.remove(0)),
        other => Err(format!("expected one event, got {other:?}").into()),
    }
}

/// The SDK's error with its context, as the scenario's error.
fn sdk<E: std::error::Error>(what: &str) -> impl FnOnce(E) -> ScenarioError + '_ {
    move |e| format!("{what}: {}", aws_sdk_s3::error::DisplayErrorContext(&e)).into()
}

/// The name `prepare` gave the scenario's resource.
fn made(slot: &Mutex<Option<String>>) -> Result<String, ScenarioError> {
    slot.lock()
        .map_err(|_| "a scenario step panicked")?
        .clone()
        .ok_or_else(|| "change_back before prepare".into())
}

fn keep(slot: &Mutex<Option<String>>, name: &str) {
    if let Ok(mut slot) = slot.lock() {
        *slot = Some(name.to_string());
    }
}

/// A public-read bucket; changed back, it is public-read again with no public access block.
struct PublicBucket {
    moto: Moto,
    bucket: Mutex<Option<String>>,
}

#[async_trait]
impl FixScenario for PublicBucket {
    async fn prepare(&self) -> Result<UnifiedEvent, ScenarioError> {
        let bucket = s3::public_bucket(&self.moto.s3, "escher-conformance", REGION).await?;
        keep(&self.bucket, &bucket);
        normalized(aws::put_bucket_acl(&bucket, MOTO_ACCOUNT, REGION))
    }

    async fn change_back(&self, _: &UnifiedEvent) -> Result<(), ScenarioError> {
        let bucket = made(&self.bucket)?;
        self.moto
            .s3
            .delete_public_access_block()
            .bucket(&bucket)
            .send()
            .await
            .map_err(sdk("DeletePublicAccessBlock"))?;
        self.moto
            .s3
            .put_bucket_acl()
            .bucket(&bucket)
            .acl(BucketCannedAcl::PublicRead)
            .send()
            .await
            .map_err(sdk("PutBucketAcl"))?;
        Ok(())
    }
}

/// A security group open to the world on the port the event names; changed back, it is
/// open again.
struct WorldOpenGroup {
    moto: Moto,
    group: Mutex<Option<String>>,
}

const OPEN_PORT: i32 = 3389;

#[async_trait]
impl FixScenario for WorldOpenGroup {
    async fn prepare(&self) -> Result<UnifiedEvent, ScenarioError> {
        let name = escher_test_support::names::unique("escher-conformance");
        let group = ec2::security_group(
            &self.moto.ec2,
            &name,
            &[],
            vec![ec2::tcp(OPEN_PORT, "0.0.0.0/0")],
        )
        .await?;
        keep(&self.group, &group);
        normalized(aws::authorize_ingress(
            &group,
            OPEN_PORT,
            MOTO_ACCOUNT,
            REGION,
        ))
    }

    async fn change_back(&self, _: &UnifiedEvent) -> Result<(), ScenarioError> {
        let group = made(&self.group)?;
        self.moto
            .ec2
            .authorize_security_group_ingress()
            .group_id(&group)
            .ip_permissions(ec2::tcp(OPEN_PORT, "0.0.0.0/0"))
            .send()
            .await
            .map_err(sdk("AuthorizeSecurityGroupIngress"))?;
        Ok(())
    }
}

/// A running instance idle for two hours under a 10 % alarm; changed back, it is started.
struct IdleInstance {
    moto: Moto,
    instance: Mutex<Option<String>>,
}

#[async_trait]
impl FixScenario for IdleInstance {
    async fn prepare(&self) -> Result<UnifiedEvent, ScenarioError> {
        let instance = self.moto.running_instance().await;
        self.moto.put_cpu(&instance, 2.0, Duration::hours(3)).await;
        keep(&self.instance, &instance);
        normalized(aws::low_cpu_alarm(&instance, 10.0, MOTO_ACCOUNT, REGION))
    }

    async fn change_back(&self, _: &UnifiedEvent) -> Result<(), ScenarioError> {
        let instance = made(&self.instance)?;
        self.moto
            .ec2
            .start_instances()
            .instance_ids(&instance)
            .send()
            .await
            .map_err(sdk("StartInstances"))?;
        Ok(())
    }

    fn conditions(&self) -> Conditions {
        Conditions {
            min_idle_hours: Some(2.0),
            ..Conditions::default()
        }
    }
}

/// An unencrypted volume; changed back, the encrypted copy the fix made is deleted.
struct UnencryptedVolume {
    moto: Moto,
}

#[async_trait]
impl FixScenario for UnencryptedVolume {
    async fn prepare(&self) -> Result<UnifiedEvent, ScenarioError> {
        let zone = format!("{REGION}a");
        let volume = ec2::create_volume(&self.moto.ec2, &zone, 8, false).await?;
        normalized(aws::create_volume(&volume, &zone, MOTO_ACCOUNT, REGION))
    }

    async fn change_back(&self, event: &UnifiedEvent) -> Result<(), ScenarioError> {
        let copies = self
            .moto
            .ec2
            .describe_volumes()
            .filters(
                aws_sdk_ec2::types::Filter::builder()
                    .name(format!("tag:{EVENT_ID_TAG}"))
                    .values(&event.event_id)
                    .build(),
            )
            .send()
            .await
            .map_err(sdk("DescribeVolumes"))?;
        let ids: Vec<&str> = copies
            .volumes()
            .iter()
            .filter_map(|v| v.volume_id())
            .collect();
        if ids.is_empty() {
            return Err(format!("no volume tagged {EVENT_ID_TAG}={}", event.event_id).into());
        }
        for id in ids {
            self.moto
                .ec2
                .delete_volume()
                .volume_id(id)
                .send()
                .await
                .map_err(sdk("DeleteVolume"))?;
        }
        Ok(())
    }
}

/// An instance whose root file system is filling up; changed back, its volume is its old
/// size again.
struct FillingDisk {
    moto: Moto,
    volume: Mutex<Option<String>>,
}

#[async_trait]
impl FixScenario for FillingDisk {
    async fn prepare(&self) -> Result<UnifiedEvent, ScenarioError> {
        let instance = self.moto.running_instance().await;
        let volume = ec2::root_volume(&self.moto.ec2, &instance).await?;
        keep(&self.volume, &volume);
        let alarm = aws::FiringAlarm {
            name: &escher_test_support::names::unique("disk full"),
            namespace: "CWAgent",
            metric: "disk_used_percent",
            dimensions: serde_json::json!({"InstanceId": instance, "path": "/", "device": "xvda1", "fstype": "ext4"}),
            threshold: 90.0,
            above: true,
        };
        normalized(alarm.payload(MOTO_ACCOUNT, REGION))
    }

    async fn change_back(&self, _: &UnifiedEvent) -> Result<(), ScenarioError> {
        // moto lets a volume shrink (EBS does not): the nearest to "as it was" a test can get.
        let volume = made(&self.volume)?;
        self.moto
            .ec2
            .modify_volume()
            .volume_id(&volume)
            .size(8)
            .send()
            .await
            .map_err(sdk("ModifyVolume"))?;
        Ok(())
    }
}

/// A running instance failing its own status check; changed back, it is down again (moto's
/// status checks always pass on a running instance).
struct FailingInstance {
    moto: Moto,
    instance: Mutex<Option<String>>,
}

#[async_trait]
impl FixScenario for FailingInstance {
    async fn prepare(&self) -> Result<UnifiedEvent, ScenarioError> {
        let instance = self.moto.running_instance().await;
        keep(&self.instance, &instance);
        let alarm = aws::FiringAlarm {
            name: &escher_test_support::names::unique("status check"),
            namespace: "AWS/EC2",
            metric: "StatusCheckFailed_Instance",
            dimensions: serde_json::json!({"InstanceId": instance}),
            threshold: 1.0,
            above: true,
        };
        normalized(alarm.payload(MOTO_ACCOUNT, REGION))
    }

    async fn change_back(&self, _: &UnifiedEvent) -> Result<(), ScenarioError> {
        let instance = made(&self.instance)?;
        self.moto
            .ec2
            .stop_instances()
            .instance_ids(&instance)
            .send()
            .await
            .map_err(sdk("StopInstances"))?;
        Ok(())
    }
}

/// An ECS service whose deployment of revision 2 failed (no tasks wanted, so moto reports
/// it steady once back on revision 1); changed back, it is on revision 2 again.
struct FailedEcsDeployment {
    moto: Moto,
    service: Mutex<Option<String>>,
}

#[async_trait]
impl FixScenario for FailedEcsDeployment {
    async fn prepare(&self) -> Result<UnifiedEvent, ScenarioError> {
        let client = aws_sdk_ecs::Client::new(&self.moto.config);
        let (cluster, name, arn) = ecs::service_with_revisions(&client, 2, 0).await?;
        let (_, _, deployment) = ecs::counts(&client, &cluster, &name).await?;
        keep(&self.service, &format!("{cluster}/{name}"));
        let mut payload = aws::ecs_service_event(
            &arn,
            "SERVICE_DEPLOYMENT_FAILED",
            "ERROR",
            MOTO_ACCOUNT,
            REGION,
        );
        escher_test_support::fixtures::set(
            &mut payload,
            "/detail/deploymentId",
            serde_json::json!(deployment),
        );
        normalized(payload)
    }

    async fn change_back(&self, _: &UnifiedEvent) -> Result<(), ScenarioError> {
        let client = aws_sdk_ecs::Client::new(&self.moto.config);
        let made = made(&self.service)?;
        let (cluster, name) = made.split_once('/').ok_or("no service")?;
        let current = ecs::task_definition(&client, cluster, name).await?;
        let family = current
            .rsplit_once('/')
            .map(|(_, s)| s)
            .unwrap_or(&current)
            .split(':')
            .next()
            .unwrap_or_default()
            .to_string();
        client
            .update_service()
            .cluster(cluster)
            .service(name)
            .task_definition(format!("{family}:2"))
            .send()
            .await
            .map_err(sdk("UpdateService"))?;
        Ok(())
    }
}

/// A stack stuck after a failed update, on the CloudFormation stand-in (moto plays no such
/// stack); a person's next failed update puts it back.
struct StuckStack {
    cfn: CloudFormationStandIn,
    stack: Mutex<Option<String>>,
}

#[async_trait]
impl FixScenario for StuckStack {
    async fn prepare(&self) -> Result<UnifiedEvent, ScenarioError> {
        let id = self
            .cfn
            .seed(StackSeed::stuck(&escher_test_support::names::unique(
                "stack",
            )));
        keep(&self.stack, &id);
        normalized(aws::stack_status_event(
            &id,
            "UPDATE_ROLLBACK_FAILED",
            MOTO_ACCOUNT,
            REGION,
        ))
    }

    async fn change_back(&self, _: &UnifiedEvent) -> Result<(), ScenarioError> {
        self.cfn
            .set_status(&made(&self.stack)?, "UPDATE_ROLLBACK_FAILED");
        Ok(())
    }
}

/// The scenario for each action (the match is exhaustive: an action added to the model does
/// not compile without its scenario here).
fn scenario(moto: &Moto, action: Action) -> Box<dyn FixScenario> {
    let moto = moto.clone();
    match action {
        Action::MakeBucketPrivate => Box::new(PublicBucket {
            moto,
            bucket: Mutex::default(),
        }),
        Action::RevokeOpenIngress => Box::new(WorldOpenGroup {
            moto,
            group: Mutex::default(),
        }),
        Action::StopIdleInstance => Box::new(IdleInstance {
            moto,
            instance: Mutex::default(),
        }),
        Action::EncryptVolume => Box::new(UnencryptedVolume { moto }),
        Action::RollbackDeployment => Box::new(FailedEcsDeployment {
            moto,
            service: Mutex::default(),
        }),
        Action::RestartService => Box::new(FailingInstance {
            moto,
            instance: Mutex::default(),
        }),
        Action::ScaleUpCapacity => Box::new(FillingDisk {
            moto,
            volume: Mutex::default(),
        }),
    }
}

async fn moto_with_fixes() -> Option<(Moto, FixRegistry)> {
    let moto = Moto::connect(REGION, WHAT).await?;
    let fixes = aws_fixes(AwsClients::new(&moto.config));
    Some((moto, fixes))
}

/// Runs the suite on AWS's registered fix for `action`.
async fn conforms(action: Action) {
    let Some((moto, fixes)) = moto_with_fixes().await else {
        return;
    };
    let fix = fixes
        .fixes()
        .find(|f| f.action() == action)
        .unwrap_or_else(|| panic!("AWS registers a fix for {action}"));
    let scenario = scenario(&moto, action);
    match check_fix(fix, scenario.as_ref(), iam_action).await {
        Ok(steps) => println!("{action}: {}", steps.join("; ")),
        Err(e) => panic!("{e}"),
    }
}

/// Every action the setup wizard offers has an AWS fix (each held to the suite below).
#[test]
fn every_action_has_an_aws_fix() {
    let config = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(REGION))
        .build();
    let fixes = aws_fixes(AwsClients::new(&config));
    assert_eq!(
        conformance::actions(&fixes),
        Action::ALL.into_iter().collect::<BTreeSet<_>>()
    );
}

#[tokio::test]
async fn make_bucket_private_conforms() {
    conforms(Action::MakeBucketPrivate).await;
}

#[tokio::test]
async fn revoke_open_ingress_conforms() {
    conforms(Action::RevokeOpenIngress).await;
}

#[tokio::test]
async fn stop_idle_instance_conforms() {
    conforms(Action::StopIdleInstance).await;
}

#[tokio::test]
async fn encrypt_volume_conforms() {
    conforms(Action::EncryptVolume).await;
}

#[tokio::test]
async fn rollback_deployment_conforms() {
    conforms(Action::RollbackDeployment).await;
}

/// rollback_deployment's third kind of resource, held to the suite on the stand-in: it runs
/// without the emulators.
#[tokio::test]
async fn rollback_deployment_on_a_stack_conforms() {
    let cfn = CloudFormationStandIn::start().await;
    let fixes = aws_fixes(AwsClients::new(&cfn.config().await));
    let fix = fixes
        .lookup(Action::RollbackDeployment, "cloudformation_stack")
        .expect("AWS registers rollback_deployment for stacks");
    let scenario = StuckStack {
        cfn: cfn.clone(),
        stack: Mutex::default(),
    };
    match check_fix(fix, &scenario, iam_action).await {
        Ok(steps) => println!("rollback_deployment on a stack: {}", steps.join("; ")),
        Err(e) => panic!("{e}"),
    }
    assert_eq!(cfn.violations(), Vec::<String>::new());
}

#[tokio::test]
async fn restart_service_conforms() {
    conforms(Action::RestartService).await;
}

#[tokio::test]
async fn scale_up_capacity_conforms() {
    conforms(Action::ScaleUpCapacity).await;
}

/// Every AWS check, in an account holding one resource each has to report (and a cost
/// answer over budget), meets the check rules.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_check_conforms() {
    let Some(endpoint) = kit::endpoint(WHAT) else {
        return;
    };
    let account = kit::fresh_account();
    let moto = Moto::at(&endpoint, REGION)
        .await
        .in_account(&account)
        .await
        .expect("an account of the test's own");
    let zone = format!("{REGION}a");
    s3::public_bucket(&moto.s3, "escher-conformance", REGION)
        .await
        .expect("public bucket");
    ec2::create_volume(&moto.ec2, &zone, 8, false)
        .await
        .expect("unencrypted volume");
    ec2::security_group(
        &moto.ec2,
        &escher_test_support::names::unique("escher-conformance"),
        &[],
        vec![ec2::tcp(22, "0.0.0.0/0")],
    )
    .await
    .expect("open group");
    rds::db_instance(&aws_sdk_rds::Client::new(&moto.config), false, None, &[])
        .await
        .expect("unencrypted database");
    let idle = moto.running_instance().await;
    moto.put_cpu(&idle, 1.0, Duration::hours(26)).await;
    let context = ScanContext::new(ScanThresholds {
        snapshot_age_days: 0,
        idle_days: 1,
        monthly_budget_usd: Some(10.0),
        ..ScanThresholds::default()
    });
    let window = escher_core::scan::CostWindow::for_report(context.report_date());
    cost::queue_results(
        &endpoint,
        &account,
        vec![cost::page(
            vec![cost::day(
                window.yesterday,
                &[(cost::EC2_COMPUTE, 50.0)],
                true,
            )],
            None,
        )],
    )
    .await
    .expect("queue a Cost Explorer answer");

    let fixes = aws_fixes(AwsClients::new(&moto.config));
    let scanner = AwsScan::new(AwsClients::new(&moto.config), account);
    let mut reported = BTreeSet::new();
    for check in scanner.checks() {
        match conformance::check_scan_check(check.as_ref(), &fixes, REGION, &context).await {
            Ok(findings) => {
                println!("{}: {findings} findings", check.id());
                if findings > 0 {
                    reported.insert(check.id().to_string());
                }
            }
            Err(e) => panic!("{e}"),
        }
    }
    let ids: BTreeSet<String> = scanner
        .checks()
        .iter()
        .map(|c| c.id().to_string())
        .collect();
    let silent: Vec<&String> = ids.difference(&reported).collect();
    assert!(
        silent.is_empty(),
        "checks that found nothing to hold to the rules: {silent:?}"
    );
}
