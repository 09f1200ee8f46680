//! A 300-resource AWS estate over two regions in moto, for the estate test
//! (`tests/moto_estate.rs`) and the scan bench (`benches/scan.rs`).
//!
//! It lives in an account of its own (moto hands out an assumed role's credentials in the
//! role's account), new for every build, so the scan sees exactly this estate: moto is
//! shared by every test and never reset. Built with the AWS SDK, at most [`CONCURRENCY`]
//! calls in flight. [`Estate::expected`] holds the key of every finding the AWS checks
//! must report about it (`<check>:<resource id>`), and nothing else is there to report.

use std::collections::BTreeSet;
use std::sync::Arc;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_cloudwatch::primitives::DateTime as AwsDateTime;
use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, StandardUnit};
use aws_sdk_ec2::types::{InstanceType, IpPermission, IpRange, VolumeType};
use aws_sdk_s3::types::{BucketCannedAcl, BucketLocationConstraint, CreateBucketConfiguration};
use chrono::{Duration, Utc};

pub const REGIONS: [&str; 2] = ["us-east-1", "eu-west-1"];
/// SDK calls in flight while building: enough to keep moto busy, few enough for 2 cores.
pub const CONCURRENCY: usize = 8;
/// An image moto ships in every region and account.
const AMI: &str = "ami-12c6146b";

/// What one region holds (the same in both).
const PUBLIC_BUCKETS: usize = 12;
const PRIVATE_BUCKETS: usize = 18;
const UNENCRYPTED_VOLUMES: usize = 25;
/// An encrypted, unattached volume with a snapshot of it (the snapshot is not orphaned).
const SNAPSHOTTED_VOLUMES: usize = 15;
/// Snapshots of volumes deleted since.
const ORPHANED_SNAPSHOTS: usize = 15;
const SSH_OPEN_GROUPS: usize = 20;
const WEB_GROUPS: usize = 12;
const INTERNAL_DB_GROUPS: usize = 8;
const IDLE_INSTANCES: usize = 2;
const BUSY_INSTANCES: usize = 2;
const UNMEASURED_INSTANCES: usize = 2;

pub struct Estate {
    pub account: String,
    /// The estate account's credentials, in the first region.
    pub sdk: SdkConfig,
    /// Resources created (buckets, volumes, snapshots, groups, instances, root volumes).
    pub resources: usize,
    pub expected: BTreeSet<String>,
}

#[derive(Clone)]
struct Clients {
    region: &'static str,
    account: Arc<str>,
    s3: aws_sdk_s3::Client,
    ec2: aws_sdk_ec2::Client,
    cloudwatch: aws_sdk_cloudwatch::Client,
}

#[derive(Debug, Clone, Copy)]
enum Job {
    Bucket {
        public: bool,
        n: usize,
    },
    UnencryptedVolume,
    SnapshottedVolume,
    OrphanedSnapshot,
    Group {
        port: i32,
        cidr: &'static str,
        n: usize,
    },
    Instance {
        cpu: Option<f64>,
    },
}

/// What one job made: how many resources are left standing, the findings they must give.
struct Made {
    resources: usize,
    expected: Vec<String>,
}

fn sdk_error<E: std::error::Error>(what: &str, e: E) -> String {
    format!("{what}: {}", aws_sdk_ec2::error::DisplayErrorContext(&e))
}

/// An account id no other build (or test) uses.
fn fresh_account() -> String {
    let nanos = Utc::now().timestamp_nanos_opt().unwrap_or_default() as u64;
    let n = (u64::from(std::process::id()) * 1_000_003 + nanos) % 1_000_000_000_000;
    let account = format!("{n:012}");
    if account == "123456789012" {
        "210987654321".into()
    } else {
        account
    }
}

async fn sdk_config(
    endpoint: &str,
    region: &str,
    creds: Option<aws_sdk_sts::config::Credentials>,
) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new(region.to_string()));
    if let Some(creds) = creds {
        loader = loader.credentials_provider(creds);
    }
    loader.load().await
}

fn ec2_key(c: &Clients, check: &str, kind: &str, id: &str) -> String {
    format!("{check}:arn:aws:ec2:{}:{}:{kind}/{id}", c.region, c.account)
}

async fn create_volume(c: &Clients, encrypted: bool) -> Result<String, String> {
    let out = c
        .ec2
        .create_volume()
        .availability_zone(format!("{}a", c.region))
        .size(8)
        .volume_type(VolumeType::Gp3)
        .encrypted(encrypted)
        .send()
        .await
        .map_err(|e| sdk_error("CreateVolume", e))?;
    out.volume_id()
        .map(str::to_string)
        .ok_or_else(|| "CreateVolume returned no volume id".into())
}

async fn create_snapshot(c: &Clients, volume: &str) -> Result<String, String> {
    let out = c
        .ec2
        .create_snapshot()
        .volume_id(volume)
        .send()
        .await
        .map_err(|e| sdk_error("CreateSnapshot", e))?;
    out.snapshot_id()
        .map(str::to_string)
        .ok_or_else(|| "CreateSnapshot returned no snapshot id".into())
}

/// One `CPUUtilization` datapoint every 5 minutes over the last 7 days (the idle window).
async fn put_cpu(c: &Clients, instance: &str, value: f64) -> Result<(), String> {
    let now = Utc::now();
    let data: Vec<MetricDatum> = (1..=7 * 24 * 12)
        .map(|i| {
            let at = now - Duration::minutes(5 * i) + Duration::seconds(30);
            MetricDatum::builder()
                .metric_name("CPUUtilization")
                .dimensions(
                    Dimension::builder()
                        .name("InstanceId")
                        .value(instance)
                        .build(),
                )
                .timestamp(AwsDateTime::from_secs(at.timestamp()))
                .value(value)
                .unit(StandardUnit::Percent)
                .build()
        })
        .collect();
    for chunk in data.chunks(500) {
        c.cloudwatch
            .put_metric_data()
            .namespace("AWS/EC2")
            .set_metric_data(Some(chunk.to_vec()))
            .send()
            .await
            .map_err(|e| sdk_error("PutMetricData", e))?;
    }
    Ok(())
}

async fn make(c: Clients, job: Job) -> Result<Made, String> {
    match job {
        Job::Bucket { public, n } => {
            let name = format!("escher-estate-{}-{}-{n}", c.account, c.region);
            let mut create = c.s3.create_bucket().bucket(&name);
            // us-east-1 is the one region S3 wants no location constraint for.
            if c.region != "us-east-1" {
                create = create.create_bucket_configuration(
                    CreateBucketConfiguration::builder()
                        .location_constraint(BucketLocationConstraint::from(c.region))
                        .build(),
                );
            }
            create
                .set_acl(public.then_some(BucketCannedAcl::PublicRead))
                .send()
                .await
                .map_err(|e| sdk_error(&format!("CreateBucket {name}"), e))?;
            Ok(Made {
                resources: 1,
                expected: if public {
                    vec![format!("public_bucket:arn:aws:s3:::{name}")]
                } else {
                    vec![]
                },
            })
        }
        Job::UnencryptedVolume => {
            let id = create_volume(&c, false).await?;
            Ok(Made {
                resources: 1,
                expected: vec![
                    ec2_key(&c, "unencrypted_volume", "volume", &id),
                    ec2_key(&c, "unattached_volume", "volume", &id),
                ],
            })
        }
        Job::SnapshottedVolume => {
            let id = create_volume(&c, true).await?;
            create_snapshot(&c, &id).await?;
            Ok(Made {
                resources: 2,
                expected: vec![ec2_key(&c, "unattached_volume", "volume", &id)],
            })
        }
        Job::OrphanedSnapshot => {
            let volume = create_volume(&c, true).await?;
            let snapshot = create_snapshot(&c, &volume).await?;
            c.ec2
                .delete_volume()
                .volume_id(&volume)
                .send()
                .await
                .map_err(|e| sdk_error("DeleteVolume", e))?;
            Ok(Made {
                resources: 1,
                expected: vec![format!(
                    "orphaned_snapshot:arn:aws:ec2:{}::snapshot/{snapshot}",
                    c.region
                )],
            })
        }
        Job::Group { port, cidr, n } => {
            let out = c
                .ec2
                .create_security_group()
                .group_name(format!("estate-{port}-{n}"))
                .description("scan estate")
                .send()
                .await
                .map_err(|e| sdk_error("CreateSecurityGroup", e))?;
            let id = out.group_id().ok_or("CreateSecurityGroup returned no id")?;
            c.ec2
                .authorize_security_group_ingress()
                .group_id(id)
                .ip_permissions(
                    IpPermission::builder()
                        .ip_protocol("tcp")
                        .from_port(port)
                        .to_port(port)
                        .ip_ranges(IpRange::builder().cidr_ip(cidr).build())
                        .build(),
                )
                .send()
                .await
                .map_err(|e| sdk_error("AuthorizeSecurityGroupIngress", e))?;
            let admin = port == 22 && cidr == "0.0.0.0/0";
            Ok(Made {
                resources: 1,
                expected: if admin {
                    vec![ec2_key(&c, "open_admin_port", "security-group", id)]
                } else {
                    vec![]
                },
            })
        }
        Job::Instance { cpu } => {
            let out = c
                .ec2
                .run_instances()
                .image_id(AMI)
                .instance_type(InstanceType::T3Micro)
                .min_count(1)
                .max_count(1)
                .send()
                .await
                .map_err(|e| sdk_error("RunInstances", e))?;
            let id = out
                .instances()
                .first()
                .and_then(|i| i.instance_id())
                .ok_or("RunInstances returned no instance")?
                .to_string();
            let described = c
                .ec2
                .describe_instances()
                .instance_ids(&id)
                .send()
                .await
                .map_err(|e| sdk_error("DescribeInstances", e))?;
            // moto gives every instance an unencrypted root volume, attached.
            let root = described
                .reservations()
                .iter()
                .flat_map(|r| r.instances())
                .flat_map(|i| i.block_device_mappings())
                .find_map(|m| m.ebs()?.volume_id())
                .ok_or_else(|| format!("instance {id} has no root volume"))?
                .to_string();
            let mut expected = vec![ec2_key(&c, "unencrypted_volume", "volume", &root)];
            if let Some(cpu) = cpu {
                put_cpu(&c, &id, cpu).await?;
                if cpu < 5.0 {
                    expected.push(ec2_key(&c, "idle_instance", "instance", &id));
                }
            }
            Ok(Made {
                resources: 2,
                expected,
            })
        }
    }
}

fn jobs() -> Vec<Job> {
    let mut jobs = Vec::new();
    for n in 0..PUBLIC_BUCKETS {
        jobs.push(Job::Bucket { public: true, n });
    }
    for n in 0..PRIVATE_BUCKETS {
        jobs.push(Job::Bucket {
            public: false,
            n: PUBLIC_BUCKETS + n,
        });
    }
    jobs.extend(std::iter::repeat_n(
        Job::UnencryptedVolume,
        UNENCRYPTED_VOLUMES,
    ));
    jobs.extend(std::iter::repeat_n(
        Job::SnapshottedVolume,
        SNAPSHOTTED_VOLUMES,
    ));
    jobs.extend(std::iter::repeat_n(
        Job::OrphanedSnapshot,
        ORPHANED_SNAPSHOTS,
    ));
    for (count, port, cidr) in [
        (SSH_OPEN_GROUPS, 22, "0.0.0.0/0"),
        (WEB_GROUPS, 443, "0.0.0.0/0"),
        (INTERNAL_DB_GROUPS, 5432, "10.0.0.0/8"),
    ] {
        for n in 0..count {
            jobs.push(Job::Group { port, cidr, n });
        }
    }
    for (count, cpu) in [
        (IDLE_INSTANCES, Some(1.0)),
        (BUSY_INSTANCES, Some(50.0)),
        (UNMEASURED_INSTANCES, None),
    ] {
        jobs.extend(std::iter::repeat_n(Job::Instance { cpu }, count));
    }
    jobs
}

impl Estate {
    /// Builds the estate on moto at `endpoint`, in a new account.
    pub async fn build(endpoint: &str) -> Result<Estate, String> {
        let account = fresh_account();
        let default = sdk_config(endpoint, REGIONS[0], None).await;
        let assumed = aws_sdk_sts::Client::new(&default)
            .assume_role()
            .role_arn(format!("arn:aws:iam::{account}:role/escher-estate"))
            .role_session_name("escher-estate")
            .send()
            .await
            .map_err(|e| sdk_error("AssumeRole into a fresh moto account", e))?;
        let creds = assumed
            .credentials()
            .ok_or("AssumeRole returned no credentials")?;
        let creds = aws_sdk_sts::config::Credentials::new(
            creds.access_key_id(),
            creds.secret_access_key(),
            Some(creds.session_token().to_string()),
            None,
            "escher-estate",
        );
        let shared_account: Arc<str> = Arc::from(account.as_str());
        let mut per_region = Vec::new();
        for region in REGIONS {
            let sdk = sdk_config(endpoint, region, Some(creds.clone())).await;
            per_region.push(Clients {
                region,
                account: Arc::clone(&shared_account),
                s3: escher_aws::s3_client(&sdk),
                ec2: aws_sdk_ec2::Client::new(&sdk),
                cloudwatch: aws_sdk_cloudwatch::Client::new(&sdk),
            });
        }
        let permits = Arc::new(tokio::sync::Semaphore::new(CONCURRENCY));
        let mut tasks = tokio::task::JoinSet::new();
        for clients in &per_region {
            for job in jobs() {
                let (clients, permits) = (clients.clone(), Arc::clone(&permits));
                tasks.spawn(async move {
                    let _permit = permits.acquire_owned().await;
                    let region = clients.region;
                    make(clients, job)
                        .await
                        .map_err(|e| format!("{region} {job:?}: {e}"))
                });
            }
        }
        let mut estate = Estate {
            sdk: sdk_config(endpoint, REGIONS[0], Some(creds)).await,
            account,
            resources: 0,
            expected: BTreeSet::new(),
        };
        while let Some(joined) = tasks.join_next().await {
            let made = joined.map_err(|e| format!("an estate job stopped: {e}"))??;
            estate.resources += made.resources;
            estate.expected.extend(made.expected);
        }
        Ok(estate)
    }
}
