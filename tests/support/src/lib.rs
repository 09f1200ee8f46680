//! Escher Extend's test kit, shared by the tests, benches and examples of every crate (a
//! `[dev-dependencies]` entry only; it depends on no escher crate, so it never forms a cycle
//! with the crates it tests).
//!
//! One module per emulator, so each cloud's kit sits beside the others:
//! - [`moto`]: AWS. The endpoint and the S3 store `tests/emulators.sh` starts; with the `aws`
//!   feature, SDK clients, accounts of one's own and one module per service (buckets,
//!   instances, CPU metrics, topics with subscribed queues).
//! - [`azurite`] (Azure Blob) and [`fake_gcs`] (GCS): their stores. [`azure_arm`] (`azure`):
//!   a Resource Manager stand-in answering with Microsoft's published examples and holding
//!   every request to them, with a managed-identity endpoint. [`gcp_api`] (`gcp`): a
//!   contract server for Cloud Storage, Compute Engine and Cloud Monitoring holding every
//!   request to Google's published discovery documents; [`gcp_infra_manager`] and
//!   [`gcp_project_api`] (`gcp`): Infrastructure Manager and the project APIs `extend --cloud
//!   gcp` calls, at one origin. What the three share (reading a request, holding it to the
//!   discovery documents of [`gcp_discovery`], logging it, Google's answers) is
//!   [`gcp_incoming`].
//! - [`cloudformation`] (`aws`): a CloudFormation stand-in held to the published API model,
//!   for the stuck stacks and rollback calls moto does not play.
//! - [`estate`] (`aws`): a 300-resource AWS estate on moto, for the scan test and bench.
//! - [`fault_proxy`] (`faults`, with `aws` or `gcp`): a proxy in front of an emulator or a
//!   contract server that logs every request and answers the ones its rules pick with a
//!   fault (closed, reset, hung, 5xx, 429, `SlowDown`, cut short); [`fault_suite`]: what every
//!   cloud's fault suite shares (scenarios, deliveries, the verdict, the table); [`load`]:
//!   what every cloud's load bench shares (the shuffled deliveries, the exactly-once verdict).
//! - [`lambda_runtime_api`] (`aws`): a stand-in for the Lambda Runtime API, to run the
//!   functions' binaries as Lambda does.
//!
//! Then what is not an emulator: [`emulator`] (the skip-or-fail rule every kit applies when
//! its emulator is absent), [`names`], [`figures`] (how benches print percentiles), [`fixtures`] (the repository's sample payloads),
//! [`schema`] (`schema`), [`http`] (a request reader and a webhook receiver) and [`chromium`].
//!
//! Helpers that talk to an emulator return `Result<_, String>` (a bench reports the failure
//! instead of panicking; a test `expect`s it); helpers that read the repository panic with
//! the path, since a missing fixture is a broken checkout, not a condition to handle.

#[cfg(feature = "azure")]
pub mod azure_arm;
pub mod azurite;
pub mod chromium;
#[cfg(feature = "aws")]
pub mod cloudformation;
pub mod emulator;
#[cfg(feature = "aws")]
pub mod estate;
pub mod fake_gcs;
#[cfg(feature = "faults")]
pub mod fault_proxy;
#[cfg(feature = "faults")]
pub mod fault_suite;
pub mod figures;
pub mod fixtures;
#[cfg(feature = "gcp")]
pub mod gcp_api;
#[cfg(feature = "gcp")]
pub mod gcp_discovery;
#[cfg(feature = "gcp")]
pub mod gcp_incoming;
#[cfg(feature = "gcp")]
pub mod gcp_infra_manager;
#[cfg(feature = "gcp")]
pub mod gcp_project_api;
pub mod golden;
pub mod http;
#[cfg(feature = "aws")]
pub mod lambda_runtime_api;
#[cfg(feature = "faults")]
pub mod load;
pub mod moto;
pub mod names;
pub mod process_memory;
#[cfg(feature = "schema")]
pub mod schema;
