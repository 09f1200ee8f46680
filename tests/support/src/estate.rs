//! A 300-resource AWS estate over two regions in moto, for the estate scan test
//! (`handlers/aws/tests/scan_estate.rs`) and the scan bench (`handlers/aws/benches/scan.rs`),
//! which also builds it ten times over ([`Estate::build_scaled`]: about 3,000 resources).
//!
//! It lives in an account of its own ([`moto::fresh_account`]), new for every build, so the
//! scan sees exactly this estate: moto is shared by every test and never reset. Built with
//! the AWS SDK, at most [`CONCURRENCY`] calls in flight. [`Estate::expected`] holds the key of
//! every finding the AWS checks must report about it (`<check>:<resource id>`), and nothing
//! else is there to report.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use aws_config::SdkConfig;
use aws_sdk_s3::types::BucketCannedAcl;
use chrono::Duration;

use crate::moto::{self, cloudwatch, ec2, s3, Moto};

/// The estate's regions; its SDK configuration is in the first.
pub const REGIONS: [&str; 2] = ["us-east-1", "eu-west-1"];
/// SDK calls in flight while building: enough to keep moto busy, few enough for 2 cores.
pub const CONCURRENCY: usize = 8;

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

/// What [`Estate::build`] made.
pub struct Estate {
    pub account: String,
    /// The estate account's credentials, in the first region.
    pub sdk: SdkConfig,
    /// Resources created (buckets, volumes, snapshots, groups, instances, root volumes).
    pub resources: usize,
    pub expected: BTreeSet<String>,
}

/// One region of the estate account, as every job sees it.
#[derive(Clone)]
struct Region {
    name: &'static str,
    account: Arc<str>,
    moto: Moto,
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

fn ec2_key(r: &Region, check: &str, kind: &str, id: &str) -> String {
    format!("{check}:arn:aws:ec2:{}:{}:{kind}/{id}", r.name, r.account)
}

async fn volume(r: &Region, encrypted: bool) -> Result<String, String> {
    ec2::create_volume(&r.moto.ec2, &format!("{}a", r.name), 8, encrypted).await
}

async fn make(r: Region, job: Job) -> Result<Made, String> {
    match job {
        Job::Bucket { public, n } => {
            let name = format!("escher-estate-{}-{}-{n}", r.account, r.name);
            let acl = public.then_some(BucketCannedAcl::PublicRead);
            s3::create_bucket(&r.moto.s3, &name, r.name, acl).await?;
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
            let id = volume(&r, false).await?;
            Ok(Made {
                resources: 1,
                expected: vec![
                    ec2_key(&r, "unencrypted_volume", "volume", &id),
                    ec2_key(&r, "unattached_volume", "volume", &id),
                ],
            })
        }
        Job::SnapshottedVolume => {
            let id = volume(&r, true).await?;
            ec2::create_snapshot(&r.moto.ec2, &id).await?;
            Ok(Made {
                resources: 2,
                expected: vec![ec2_key(&r, "unattached_volume", "volume", &id)],
            })
        }
        Job::OrphanedSnapshot => {
            let volume = volume(&r, true).await?;
            let snapshot = ec2::create_snapshot(&r.moto.ec2, &volume).await?;
            r.moto
                .ec2
                .delete_volume()
                .volume_id(&volume)
                .send()
                .await
                .map_err(|e| moto::sdk_error("DeleteVolume", e))?;
            Ok(Made {
                resources: 1,
                expected: vec![format!(
                    "orphaned_snapshot:arn:aws:ec2:{}::snapshot/{snapshot}",
                    r.name
                )],
            })
        }
        Job::Group { port, cidr, n } => {
            let name = format!("estate-{port}-{n}");
            let id =
                ec2::security_group(&r.moto.ec2, &name, &[], vec![ec2::tcp(port, cidr)]).await?;
            let admin = port == 22 && cidr == "0.0.0.0/0";
            Ok(Made {
                resources: 1,
                expected: if admin {
                    vec![ec2_key(&r, "open_admin_port", "security-group", &id)]
                } else {
                    vec![]
                },
            })
        }
        Job::Instance { cpu } => {
            let id = ec2::run_instance(&r.moto.ec2, "t3.micro").await?;
            let root = ec2::root_volume(&r.moto.ec2, &id).await?;
            let mut expected = vec![ec2_key(&r, "unencrypted_volume", "volume", &root)];
            if let Some(cpu) = cpu {
                // The idle check's window: 7 days of 5-minute datapoints.
                cloudwatch::put_cpu(
                    &r.moto.cloudwatch,
                    &id,
                    cpu,
                    Duration::days(7),
                    Duration::minutes(5),
                )
                .await?;
                if cpu < 5.0 {
                    expected.push(ec2_key(&r, "idle_instance", "instance", &id));
                }
            }
            Ok(Made {
                resources: 2,
                expected,
            })
        }
    }
}

/// One region's jobs, every count multiplied by `scale`.
fn jobs(scale: usize) -> Vec<Job> {
    let mut jobs = Vec::new();
    for n in 0..PUBLIC_BUCKETS * scale {
        jobs.push(Job::Bucket { public: true, n });
    }
    for n in 0..PRIVATE_BUCKETS * scale {
        jobs.push(Job::Bucket {
            public: false,
            n: PUBLIC_BUCKETS * scale + n,
        });
    }
    jobs.extend(std::iter::repeat_n(
        Job::UnencryptedVolume,
        UNENCRYPTED_VOLUMES * scale,
    ));
    jobs.extend(std::iter::repeat_n(
        Job::SnapshottedVolume,
        SNAPSHOTTED_VOLUMES * scale,
    ));
    jobs.extend(std::iter::repeat_n(
        Job::OrphanedSnapshot,
        ORPHANED_SNAPSHOTS * scale,
    ));
    for (count, port, cidr) in [
        (SSH_OPEN_GROUPS, 22, "0.0.0.0/0"),
        (WEB_GROUPS, 443, "0.0.0.0/0"),
        (INTERNAL_DB_GROUPS, 5432, "10.0.0.0/8"),
    ] {
        for n in 0..count * scale {
            jobs.push(Job::Group { port, cidr, n });
        }
    }
    for (count, cpu) in [
        (IDLE_INSTANCES, Some(1.0)),
        (BUSY_INSTANCES, Some(50.0)),
        (UNMEASURED_INSTANCES, None),
    ] {
        jobs.extend(std::iter::repeat_n(Job::Instance { cpu }, count * scale));
    }
    jobs
}

impl Estate {
    /// Whether the checks reported exactly the estate's findings, each once: `reported`
    /// counts each finding's key as the checks gave it (before any merge by key). The number
    /// of findings, or what was reported twice, missed or unexpected.
    pub fn check_reported(&self, reported: &BTreeMap<String, usize>) -> Result<usize, String> {
        crate::load::reported_once(&self.expected, reported)
    }

    /// Builds the estate on moto at `endpoint`, in a new account.
    pub async fn build(endpoint: &str) -> Result<Estate, String> {
        Self::build_scaled(endpoint, 1).await
    }

    /// The estate with every kind of resource `scale` times over (10: about 3,000
    /// resources), for the scan bench's large estate.
    pub async fn build_scaled(endpoint: &str, scale: usize) -> Result<Estate, String> {
        let account = moto::fresh_account();
        let home = Moto::at(endpoint, REGIONS[0])
            .await
            .in_account(&account)
            .await?;
        let shared_account: Arc<str> = Arc::from(account.as_str());
        let per_region: Vec<Region> = REGIONS
            .into_iter()
            .map(|name| Region {
                name,
                account: Arc::clone(&shared_account),
                moto: home.in_region(name),
            })
            .collect();
        let permits = Arc::new(tokio::sync::Semaphore::new(CONCURRENCY));
        let mut tasks = tokio::task::JoinSet::new();
        for region in &per_region {
            for job in jobs(scale) {
                let (region, permits) = (region.clone(), Arc::clone(&permits));
                tasks.spawn(async move {
                    let _permit = permits.acquire_owned().await;
                    let name = region.name;
                    make(region, job)
                        .await
                        .map_err(|e| format!("{name} {job:?}: {e}"))
                });
            }
        }
        let mut estate = Estate {
            sdk: home.config,
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
