//! moto, the AWS emulator `tests/emulators.sh` starts (one server for every AWS service, on
//! 127.0.0.1; shared by every test of a run and never reset).
//!
//! Without features: its endpoint and the S3 store it holds. With `aws`: [`Moto`] (an SDK
//! configuration and clients for one region), accounts of one's own, and a module per
//! service for what the tests make there. The service modules' functions return moto's
//! error (the estate and the benches report it); `Moto`'s methods of the same names are
//! the tests' short forms, panicking with it, since a test cannot go on without its resource.

use crate::emulator;

#[cfg(feature = "aws")]
pub mod autoscaling;
#[cfg(feature = "aws")]
pub mod cloudwatch;
#[cfg(feature = "aws")]
pub mod cost;
#[cfg(feature = "aws")]
pub mod ec2;
#[cfg(feature = "aws")]
pub mod ecs;
#[cfg(feature = "aws")]
pub mod lambda;
#[cfg(feature = "aws")]
pub mod rds;
#[cfg(feature = "aws")]
pub mod s3;
#[cfg(feature = "aws")]
pub mod sns;

/// The variable holding moto's endpoint (`http://127.0.0.1:<port>`).
pub const ENDPOINT_VAR: &str = "ESCHER_TEST_AWS_ENDPOINT";
/// The variable holding the s3 store URI of the bucket `tests/emulators.sh` creates.
pub const S3_STORE_VAR: &str = "ESCHER_TEST_S3_URI";
/// The account moto puts everything in unless told otherwise.
pub const ACCOUNT: &str = "123456789012";

/// moto's endpoint, or `None` after `NOTICE: ESCHER_TEST_AWS_ENDPOINT not set; <what> runs
/// under `make test`, which starts moto` (a failure instead when the emulators are required,
/// see [`emulator::var`]).
pub fn endpoint(what: &str) -> Option<String> {
    emulator::var(
        ENDPOINT_VAR,
        &format!("{what} runs under `make test`, which starts moto"),
    )
}

/// The s3 store in moto's shared bucket, or `None` after a notice as for [`endpoint`]. Give
/// each test a folder of its own in it with [`emulator::sub_store`].
pub fn s3_store(what: &str) -> Option<String> {
    emulator::var(
        S3_STORE_VAR,
        &format!("{what} runs under `make test`, which starts moto"),
    )
}

/// What a benchmark against moto starts from: the endpoint and a multi-thread runtime, or
/// `None` after saying why `what` measures nothing (no moto, see [`endpoint`]; no runtime).
pub fn bench_start(what: &str) -> Option<(String, tokio::runtime::Runtime)> {
    let endpoint = emulator::var(
        ENDPOINT_VAR,
        &format!("{what} runs against moto under `make bench`"),
    )?;
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => Some((endpoint, runtime)),
        Err(e) => {
            emulator::notice(&format!("{what}: cannot start a runtime: {e}"));
            None
        }
    }
}

/// An s3 store URI for `bucket`/`prefix` on moto at `endpoint`, as Escher's stores open it.
pub fn store_uri(endpoint: &str, region: &str, bucket: &str, prefix: &str) -> String {
    format!("s3://{bucket}/{prefix}?region={region}&endpoint={endpoint}")
}

/// An account number no other test, build or earlier run uses (see [`Moto::in_account`]):
/// the process id, a counter within the process, and the time, for a process id used again.
pub fn fresh_account() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed) % 100;
    let millis = chrono::Utc::now().timestamp_millis() % 1000;
    let account = format!("{:07}{n:02}{millis:03}", std::process::id() % 10_000_000);
    if account == ACCOUNT {
        // Everything else lives in moto's default account.
        format!(
            "{:07}{n:02}{:03}",
            std::process::id() % 10_000_000,
            (millis + 1) % 1000
        )
    } else {
        account
    }
}

#[cfg(feature = "aws")]
pub use self::sdk::*;

#[cfg(feature = "aws")]
mod sdk {
    use aws_config::{BehaviorVersion, Region, SdkConfig};
    use aws_sdk_ec2::types::InstanceStateName;
    use aws_sdk_sts::config::{Credentials, SharedCredentialsProvider};
    use chrono::Duration;

    use super::{cloudwatch, ec2, endpoint, s3, sns};
    use crate::names::unique;

    /// An SDK call's error with everything the SDK knows about it, after `what`.
    pub(crate) fn sdk_error<E: std::error::Error>(what: &str, e: E) -> String {
        format!("{what}: {}", aws_sdk_sts::error::DisplayErrorContext(&e))
    }

    /// An SDK configuration for moto at `endpoint` in `region`, with `credentials`, or else
    /// those of the environment (`.emulators/env` sets moto's).
    pub async fn sdk_config(
        endpoint: &str,
        region: &str,
        credentials: Option<Credentials>,
    ) -> SdkConfig {
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .endpoint_url(endpoint)
            .region(Region::new(region.to_string()));
        if let Some(credentials) = credentials {
            loader = loader.credentials_provider(credentials);
        }
        loader.load().await
    }

    /// Credentials in `account`, a role's there assumed (moto hands out an assumed role's
    /// credentials in the role's account, making the account as it goes): the way to an
    /// account of one's own, whose resources no other test sees.
    pub async fn assume_role(config: &SdkConfig, account: &str) -> Result<Credentials, String> {
        let assumed = aws_sdk_sts::Client::new(config)
            .assume_role()
            .role_arn(format!("arn:aws:iam::{account}:role/escher-test"))
            .role_session_name("escher-test")
            .send()
            .await
            .map_err(|e| sdk_error(&format!("AssumeRole into account {account}"), e))?;
        let creds = assumed
            .credentials()
            .ok_or("AssumeRole returned no credentials")?;
        Ok(Credentials::new(
            creds.access_key_id(),
            creds.secret_access_key(),
            Some(creds.session_token().to_string()),
            None,
            "moto-assumed-role",
        ))
    }

    /// moto in one region: its endpoint, an SDK configuration and the clients the kit's
    /// helpers take (S3 path-style, as a custom endpoint needs). Others come from `config`.
    #[derive(Clone)]
    pub struct Moto {
        pub endpoint: String,
        pub config: SdkConfig,
        pub s3: aws_sdk_s3::Client,
        pub ec2: aws_sdk_ec2::Client,
        pub cloudwatch: aws_sdk_cloudwatch::Client,
        pub sns: aws_sdk_sns::Client,
        pub sqs: aws_sdk_sqs::Client,
    }

    impl Moto {
        /// moto in `region` with the environment's credentials (moto's default account),
        /// or `None` after the notice that `what` is skipped (see [`endpoint`]).
        pub async fn connect(region: &str, what: &str) -> Option<Moto> {
            let endpoint = endpoint(what)?;
            Some(Moto::at(&endpoint, region).await)
        }

        /// moto at `endpoint` in `region`, with the environment's credentials.
        pub async fn at(endpoint: &str, region: &str) -> Moto {
            Moto::with_config(endpoint, sdk_config(endpoint, region, None).await)
        }

        /// moto at `endpoint` through `config`.
        pub fn with_config(endpoint: &str, config: SdkConfig) -> Moto {
            Moto {
                endpoint: endpoint.to_string(),
                s3: super::s3::client(&config),
                ec2: aws_sdk_ec2::Client::new(&config),
                cloudwatch: aws_sdk_cloudwatch::Client::new(&config),
                sns: aws_sdk_sns::Client::new(&config),
                sqs: aws_sdk_sqs::Client::new(&config),
                config,
            }
        }

        /// The same account in another region.
        pub fn in_region(&self, region: &str) -> Moto {
            let config = self
                .config
                .to_builder()
                .region(Region::new(region.to_string()))
                .build();
            Moto::with_config(&self.endpoint, config)
        }

        /// The same region in `account` (see [`assume_role`]; [`super::fresh_account`]
        /// gives one nobody else uses).
        pub async fn in_account(&self, account: &str) -> Result<Moto, String> {
            let credentials = assume_role(&self.config, account).await?;
            let config = self
                .config
                .to_builder()
                .credentials_provider(SharedCredentialsProvider::new(credentials))
                .build();
            Ok(Moto::with_config(&self.endpoint, config))
        }

        /// The region the clients are in.
        pub fn region(&self) -> &str {
            self.config.region().map(|r| r.as_ref()).unwrap_or_default()
        }

        /// An s3 store URI for `bucket`/`prefix` on this moto, in this region.
        pub fn store_uri(&self, bucket: &str, prefix: &str) -> String {
            super::store_uri(&self.endpoint, self.region(), bucket, prefix)
        }

        /// A new public-read bucket in this region (see [`s3::public_bucket`]).
        pub async fn public_bucket(&self, prefix: &str) -> String {
            s3::public_bucket(&self.s3, prefix, self.region())
                .await
                .unwrap_or_else(|e| panic!("public bucket: {e}"))
        }

        /// A new private bucket in this region, named `<prefix>-<unique>`.
        pub async fn private_bucket(&self, prefix: &str) -> String {
            let bucket = unique(prefix);
            s3::create_bucket(&self.s3, &bucket, self.region(), None)
                .await
                .unwrap_or_else(|e| panic!("private bucket: {e}"));
            bucket
        }

        /// See [`s3::public_grants`].
        pub async fn public_grants(&self, bucket: &str) -> Vec<String> {
            s3::public_grants(&self.s3, bucket)
                .await
                .unwrap_or_else(|e| panic!("{e}"))
        }

        /// A running t3.micro; returns its id.
        pub async fn running_instance(&self) -> String {
            ec2::run_instance(&self.ec2, "t3.micro")
                .await
                .unwrap_or_else(|e| panic!("{e}"))
        }

        /// See [`ec2::instance_state`].
        pub async fn instance_state(&self, instance: &str) -> InstanceStateName {
            ec2::instance_state(&self.ec2, instance)
                .await
                .unwrap_or_else(|e| panic!("{e}"))
        }

        /// `instance`'s CPU at `percent`, a datapoint every 5 minutes (the period of the
        /// alarms and of the idle check) over the last `over` (see [`cloudwatch::put_cpu`]).
        pub async fn put_cpu(&self, instance: &str, percent: f64, over: Duration) {
            cloudwatch::put_cpu(
                &self.cloudwatch,
                instance,
                percent,
                over,
                Duration::minutes(5),
            )
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        }

        /// A topic with a queue subscribed, named `<prefix>-<unique>`: its ARN and the
        /// queue's URL (see [`sns::topic_with_queue`]).
        pub async fn topic_with_queue(&self, prefix: &str) -> (String, String) {
            sns::topic_with_queue(&self.sns, &self.sqs, &unique(prefix))
                .await
                .unwrap_or_else(|e| panic!("{e}"))
        }

        /// See [`sns::delivered`].
        pub async fn delivered(&self, queue: &str) -> Vec<sns::Delivered> {
            sns::delivered(&self.sqs, queue)
                .await
                .unwrap_or_else(|e| panic!("{e}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_accounts_are_twelve_digits_and_differ() {
        let (a, b) = (fresh_account(), fresh_account());
        assert_ne!(a, b);
        assert!(
            a.len() == 12 && a.bytes().all(|c| c.is_ascii_digit()),
            "{a}"
        );
        assert_ne!(a, ACCOUNT);
    }
}
