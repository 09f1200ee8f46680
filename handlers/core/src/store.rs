//! Object storage locations. Every store (approvals, audit, state) is named by one URI, and
//! this is the only module that reads those URIs:
//!
//! | URI | where |
//! |---|---|
//! | `memory://` | process memory (tests) |
//! | `fs:///abs/path` | a local folder (the laptop default) |
//! | `s3://bucket/prefix?region=R&endpoint=URL` | S3; credentials and, without `region`, the region from the usual AWS chain |
//! | `azblob://container/prefix?account=A&endpoint=URL` | Azure Blob; account from `account` or `AZURE_STORAGE_ACCOUNT`, key from `AZURE_STORAGE_KEY`, else bearer tokens from a [`StorageTokenSource`] (a Function's managed identity) |
//! | `gcs://bucket/prefix?endpoint=URL&anonymous=true` | Google Cloud Storage; credentials from `GOOGLE_APPLICATION_CREDENTIALS` |
//!
//! Secrets never travel in a URI (URIs are printed and logged); they come from the
//! environment or the cloud's own credential chain. Unknown query parameters are errors, so a
//! typo cannot silently point a store somewhere else.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use opendal::layers::TimeoutLayer;
use opendal::Operator;

/// How long one store call may take before it is given up (Lambda's SDK calls get the same).
pub const STORE_CALL_TIMEOUT: Duration = Duration::from_secs(20);
/// How long one chunk of a read or write may take.
pub const STORE_IO_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store URI `{uri}` is not valid: {reason}")]
    InvalidUri { uri: String, reason: String },
    #[error("cannot open store {location}: {source}")]
    Open {
        location: String,
        #[source]
        source: opendal::Error,
    },
}

/// Where Azure Blob stores get bearer tokens when no account key is set: a managed identity
/// (a Function has no account key, only its identity and the role it was granted).
#[async_trait]
pub trait StorageTokenSource: Send + Sync + fmt::Debug {
    /// A token for `https://storage.azure.com/.default` and when it expires (Unix seconds).
    async fn storage_token(&self) -> Result<(String, i64), String>;
}

/// opendal's credential hook for Azure Blob, fed by a [`StorageTokenSource`].
#[derive(Debug)]
struct BearerTokenProvider(Arc<dyn StorageTokenSource>);

impl reqsign_core::ProvideCredential for BearerTokenProvider {
    type Credential = reqsign_azure_storage::Credential;

    async fn provide_credential(
        &self,
        _: &reqsign_core::Context,
    ) -> reqsign_core::Result<Option<Self::Credential>> {
        let (token, expires) = self.0.storage_token().await.map_err(|e| {
            reqsign_core::Error::new(
                reqsign_core::ErrorKind::CredentialInvalid,
                format!("no token for Azure Storage from the managed identity: {e}"),
            )
        })?;
        Ok(Some(reqsign_azure_storage::Credential::with_bearer_token(
            &token,
            reqsign_core::time::Timestamp::from_second(expires).ok(),
        )))
    }
}

/// A parsed store URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreLocation {
    Memory,
    Fs {
        root: PathBuf,
    },
    S3 {
        bucket: String,
        prefix: String,
        region: Option<String>,
        endpoint: Option<String>,
    },
    AzBlob {
        container: String,
        prefix: String,
        account: Option<String>,
        endpoint: Option<String>,
    },
    Gcs {
        bucket: String,
        prefix: String,
        endpoint: Option<String>,
        anonymous: bool,
    },
}

impl FromStr for StoreLocation {
    type Err = StoreError;

    fn from_str(uri: &str) -> Result<Self, Self::Err> {
        // A refused URI is printed and logged, and a credential pasted into it is often why
        // it is refused: the error shows it without the credential.
        let invalid = |reason: String| StoreError::InvalidUri {
            uri: shown(uri),
            reason,
        };
        let parsed = url::Url::parse(uri).map_err(|e| invalid(e.to_string()))?;
        if !parsed.username().is_empty() || parsed.password().is_some() {
            // Once ignored, and then repeated wherever the store was named (the audit
            // store's errors, the morning report's summary): refused instead.
            return Err(invalid(
                "credentials (`user:password@`) are never read from a store URI; they come from the environment or the cloud's credential chain".into(),
            ));
        }
        let mut params: BTreeMap<String, String> = parsed.query_pairs().into_owned().collect();
        let mut take = |name: &str| params.remove(name).filter(|v| !v.is_empty());
        let host = parsed.host_str().unwrap_or_default().to_string();
        let prefix = parsed.path().trim_matches('/').to_string();
        let named = |what: &str| -> Result<String, StoreError> {
            if host.is_empty() {
                Err(invalid(format!(
                    "no {what} name; write {}://{what}/prefix",
                    parsed.scheme()
                )))
            } else {
                Ok(host.clone())
            }
        };
        let location = match parsed.scheme() {
            "memory" => StoreLocation::Memory,
            "fs" => {
                if !host.is_empty() {
                    return Err(invalid(format!(
                        "`{host}` reads as a host; an fs URI needs an absolute path: fs:///{host}{}",
                        parsed.path()
                    )));
                }
                let path = parsed
                    .to_file_path()
                    .map_err(|()| invalid("the path is not absolute".into()))?;
                StoreLocation::Fs { root: path }
            }
            "s3" => StoreLocation::S3 {
                bucket: named("bucket")?,
                prefix,
                region: take("region"),
                endpoint: take("endpoint"),
            },
            "azblob" => StoreLocation::AzBlob {
                container: named("container")?,
                prefix,
                account: take("account"),
                endpoint: take("endpoint"),
            },
            "gcs" => {
                let anonymous = match take("anonymous").as_deref() {
                    None | Some("false") => false,
                    Some("true") => true,
                    Some(other) => {
                        return Err(invalid(format!(
                            "anonymous must be true or false, not `{other}`"
                        )))
                    }
                };
                StoreLocation::Gcs {
                    bucket: named("bucket")?,
                    prefix,
                    endpoint: take("endpoint"),
                    anonymous,
                }
            }
            other => {
                return Err(invalid(format!(
                    "unknown scheme `{other}`; use memory://, fs:///path, s3://bucket/prefix, \
                     azblob://container/prefix or gcs://bucket/prefix"
                )))
            }
        };
        if let Some(name) = params.keys().next() {
            return Err(invalid(format!(
                "unknown parameter `{name}` for {}:// (secrets are read from the environment, never from the URI)",
                parsed.scheme()
            )));
        }
        Ok(location)
    }
}

/// The query parameters a store URI may have; any other one's value is hidden in errors.
const KNOWN_PARAMETERS: [&str; 4] = ["region", "endpoint", "account", "anonymous"];

/// `uri` as an error shows it: without `user:password@`, a fragment or the values of
/// unknown query parameters, which is where a pasted credential would be.
fn shown(uri: &str) -> String {
    let Ok(mut url) = url::Url::parse(uri) else {
        // Unreadable, so where a credential sits is unknown: only what comes before any
        // user info or query is shown.
        let end = uri.find(['?', '#']).unwrap_or(uri.len());
        let head = &uri[..end];
        return match (head.find("://"), head.rfind('@')) {
            (Some(scheme), Some(at)) if at > scheme => {
                format!("{}://…@{}", &head[..scheme], &head[at + 1..])
            }
            _ => head.to_string(),
        };
    };
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.set_fragment(None);
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(name, value)| {
            let value = if KNOWN_PARAMETERS.contains(&name.as_ref()) {
                value.into_owned()
            } else {
                "***".to_string()
            };
            (name.into_owned(), value)
        })
        .collect();
    if pairs.is_empty() {
        url.set_query(None);
    } else {
        url.query_pairs_mut().clear().extend_pairs(pairs);
    }
    url.to_string()
}

impl fmt::Display for StoreLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let query = |pairs: &[(&str, Option<&String>)]| {
            let present: Vec<String> = pairs
                .iter()
                .filter_map(|(k, v)| v.map(|v| format!("{k}={v}")))
                .collect();
            if present.is_empty() {
                String::new()
            } else {
                format!("?{}", present.join("&"))
            }
        };
        match self {
            StoreLocation::Memory => f.write_str("memory://"),
            StoreLocation::Fs { root } => write!(f, "fs://{}", root.display()),
            StoreLocation::S3 {
                bucket,
                prefix,
                region,
                endpoint,
            } => write!(
                f,
                "s3://{bucket}/{prefix}{}",
                query(&[("region", region.as_ref()), ("endpoint", endpoint.as_ref())])
            ),
            StoreLocation::AzBlob {
                container,
                prefix,
                account,
                endpoint,
            } => write!(
                f,
                "azblob://{container}/{prefix}{}",
                query(&[
                    ("account", account.as_ref()),
                    ("endpoint", endpoint.as_ref())
                ])
            ),
            StoreLocation::Gcs {
                bucket,
                prefix,
                endpoint,
                anonymous,
            } => {
                let anonymous = anonymous.then(|| "true".to_string());
                write!(
                    f,
                    "gcs://{bucket}/{prefix}{}",
                    query(&[
                        ("endpoint", endpoint.as_ref()),
                        ("anonymous", anonymous.as_ref())
                    ])
                )
            }
        }
    }
}

impl StoreLocation {
    /// An opendal operator rooted at this location (no I/O happens here).
    pub fn operator(&self) -> Result<Operator, StoreError> {
        self.operator_with(None)
    }

    /// As [`StoreLocation::operator`], with Azure Blob requests signed by `azure_tokens`'s
    /// bearer tokens when no account key is set (a Function has no key, only its identity).
    pub fn operator_with(
        &self,
        azure_tokens: Option<Arc<dyn StorageTokenSource>>,
    ) -> Result<Operator, StoreError> {
        self.operator_within(azure_tokens, STORE_CALL_TIMEOUT, STORE_IO_TIMEOUT)
    }

    /// The operator, every call of which gives up after `call` (listing, reading an object's
    /// metadata, starting a read or write) or `io` (each chunk read or written): opendal's
    /// HTTP client has no timeout of its own, and a store that stops answering would
    /// otherwise hold the function until its platform kills it, with nothing recorded.
    /// The error is temporary, so the event is retried.
    fn operator_within(
        &self,
        azure_tokens: Option<Arc<dyn StorageTokenSource>>,
        call: Duration,
        io: Duration,
    ) -> Result<Operator, StoreError> {
        // The HTTP client behind the cloud services; idempotent, and done here so that no
        // caller can forget it (we build without opendal's before-main constructor).
        opendal::install_default();
        let open = |source: opendal::Error| StoreError::Open {
            location: self.to_string(),
            source,
        };
        let root = |prefix: &str| format!("/{prefix}");
        let operator = match self {
            StoreLocation::Memory => Operator::new(opendal::services::Memory::default()),
            StoreLocation::Fs { root } => {
                Operator::new(opendal::services::Fs::default().root(&root.display().to_string()))
            }
            StoreLocation::S3 {
                bucket,
                prefix,
                region,
                endpoint,
            } => {
                let mut builder = opendal::services::S3::default()
                    .bucket(bucket)
                    .root(&root(prefix));
                if let Some(region) = region {
                    builder = builder.region(region);
                }
                if let Some(endpoint) = endpoint {
                    builder = builder.endpoint(endpoint);
                }
                Operator::new(builder)
            }
            StoreLocation::AzBlob {
                container,
                prefix,
                account,
                endpoint,
            } => {
                let account = account
                    .clone()
                    .or_else(|| std::env::var("AZURE_STORAGE_ACCOUNT").ok())
                    .ok_or_else(|| StoreError::InvalidUri {
                        uri: self.to_string(),
                        reason:
                            "no storage account: add ?account=NAME or set AZURE_STORAGE_ACCOUNT"
                                .into(),
                    })?;
                let endpoint = endpoint
                    .clone()
                    .unwrap_or_else(|| format!("https://{account}.blob.core.windows.net"));
                let mut builder = opendal::services::Azblob::default()
                    .container(container)
                    .root(&root(prefix))
                    .account_name(&account)
                    .endpoint(&endpoint);
                if let Ok(key) = std::env::var("AZURE_STORAGE_KEY") {
                    builder = builder.account_key(&key);
                } else if let Some(tokens) = azure_tokens {
                    builder = builder.credential_provider_chain(
                        reqsign_core::ProvideCredentialChain::new()
                            .push(BearerTokenProvider(tokens)),
                    );
                }
                Operator::new(builder)
            }
            StoreLocation::Gcs {
                bucket,
                prefix,
                endpoint,
                anonymous,
            } => {
                let mut builder = opendal::services::Gcs::default()
                    .bucket(bucket)
                    .root(&root(prefix));
                if let Some(endpoint) = endpoint {
                    builder = builder.endpoint(endpoint);
                }
                if *anonymous {
                    // Emulators: no credentials to find, no metadata server to ask.
                    builder = builder
                        .skip_signature()
                        .disable_vm_metadata()
                        .disable_config_load();
                }
                Operator::new(builder)
            }
        };
        Ok(operator
            .map_err(open)?
            .layer(TimeoutLayer::new().with_timeout(call).with_io_timeout(io)))
    }
}

/// Parses a store URI and opens it: the one way the rest of the code gets an `Operator`.
pub fn open(uri: &str) -> Result<Operator, StoreError> {
    uri.parse::<StoreLocation>()?.operator()
}

/// What a create-only write found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    Written,
    /// Something was already at the path; it was left as it was.
    AlreadyExists,
}

/// The objects directly under `folder` (no sub-folders); an absent folder lists nothing.
pub async fn list_files(operator: &Operator, folder: &str) -> Result<Vec<String>, opendal::Error> {
    match operator.list(folder).await {
        Ok(entries) => Ok(entries
            .into_iter()
            .map(|e| e.path().to_string())
            .filter(|p| !p.ends_with('/'))
            .collect()),
        Err(e) if e.kind() == opendal::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// Reads a whole object: what every store read goes through.
///
/// On a local folder (`fs://`) opendal reads an object of unknown size in zero-filled
/// buffers of 2 MiB, one per read in flight, so reading fifty small incidents at once cost
/// tens of megabytes. Asking the size first (a `stat`, microseconds on a local disk) reads
/// exactly the object. Should the object be replaced between the `stat` and the read (a
/// marker or manifest rewritten by another process), the sizes disagree and it is read
/// again. Other stores answer one request with the object as it is, so they read directly.
pub async fn read_whole(
    operator: &Operator,
    path: &str,
) -> Result<opendal::Buffer, opendal::Error> {
    if operator.info().scheme() != "fs" {
        return operator.read(path).await;
    }
    for _ in 0..3 {
        let len = operator.stat(path).await?.content_length();
        if len == 0 {
            break;
        }
        match operator.read_with(path).range(0..len).await {
            // Shrunk since the stat: read again.
            Err(e) if e.kind() == opendal::ErrorKind::RangeNotSatisfied => continue,
            Err(e) => return Err(e),
            // Grown since the stat, the read stopped short of its end: read again.
            Ok(_) if operator.stat(path).await?.content_length() != len => continue,
            Ok(buffer) => return Ok(buffer),
        }
    }
    // Empty, or rewritten at every attempt: read it as opendal does by default.
    operator.read(path).await
}

/// `operator`, its calls tried again (three times more, from 200 ms apart) when they fail
/// for a reason that may pass (a connection reset, a timeout, a 503). Only for calls that
/// may be repeated safely, as deleting an object or overwriting one with the same body: a
/// create-only write repeated after its answer was lost would find itself and say "exists".
pub fn retrying(operator: &Operator) -> Operator {
    operator.clone().layer(
        opendal::layers::RetryLayer::new()
            .with_min_delay(Duration::from_millis(200))
            .with_max_delay(Duration::from_secs(2))
            .with_max_times(3)
            .with_jitter()
            .with_notify(|e: opendal::layers::RetryEvent<'_>| {
                tracing::warn!(operation = ?e.op, attempt = e.attempt, error = %e.err, "store call failed; trying again");
            }),
    )
}

/// Writes `body` at `path` only when nothing is there yet (an If-None-Match / create-only
/// write): how audit records, reports, idempotency markers and usage counters stay
/// write-once. An existing object is an answer, not an error.
pub async fn create_once(
    operator: &Operator,
    path: &str,
    body: impl Into<opendal::Buffer>,
) -> Result<Created, opendal::Error> {
    match operator.write_with(path, body).if_not_exists(true).await {
        Ok(_) => Ok(Created::Written),
        Err(e) if e.kind() == opendal::ErrorKind::ConditionNotMatch => Ok(Created::AlreadyExists),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(uri: &str) -> StoreLocation {
        uri.parse().unwrap_or_else(|e| panic!("{uri}: {e}"))
    }

    #[test]
    fn parses_each_scheme() {
        assert_eq!(parse("memory://"), StoreLocation::Memory);
        assert_eq!(
            parse("fs:///home/ana/.escher/approvals"),
            StoreLocation::Fs {
                root: PathBuf::from("/home/ana/.escher/approvals")
            }
        );
        assert_eq!(
            parse("s3://escher-state/approvals?region=eu-west-1&endpoint=http://127.0.0.1:5000"),
            StoreLocation::S3 {
                bucket: "escher-state".into(),
                prefix: "approvals".into(),
                region: Some("eu-west-1".into()),
                endpoint: Some("http://127.0.0.1:5000".into()),
            }
        );
        assert_eq!(
            parse("azblob://state/a/b?account=devstoreaccount1"),
            StoreLocation::AzBlob {
                container: "state".into(),
                prefix: "a/b".into(),
                account: Some("devstoreaccount1".into()),
                endpoint: None,
            }
        );
        assert_eq!(
            parse("gcs://escher-state?endpoint=http://127.0.0.1:4443&anonymous=true"),
            StoreLocation::Gcs {
                bucket: "escher-state".into(),
                prefix: String::new(),
                endpoint: Some("http://127.0.0.1:4443".into()),
                anonymous: true,
            }
        );
    }

    #[test]
    fn display_round_trips() {
        for uri in [
            "memory://",
            "fs:///var/lib/escher",
            "s3://b/p?region=eu-west-1",
            "azblob://c/p?account=acct&endpoint=http://127.0.0.1:10000/acct",
            "gcs://b/p?endpoint=http://127.0.0.1:4443&anonymous=true",
        ] {
            let location = parse(uri);
            assert_eq!(parse(&location.to_string()), location, "{uri}");
        }
    }

    #[test]
    fn rejects_what_would_silently_go_wrong() {
        for (uri, expect) in [
            (
                "s3://bucket/p?regoin=eu-west-1",
                "unknown parameter `regoin`",
            ),
            ("azblob://c/p?key=secret", "never from the URI"),
            ("fs://home/ana", "absolute path"),
            ("s3:///prefix-only", "no bucket name"),
            ("ftp://host/x", "unknown scheme `ftp`"),
            ("not a uri", "not valid"),
            ("gcs://b?anonymous=yes", "true or false"),
            (
                "s3://AKIAEXAMPLE:hunter2@bucket/p",
                "never read from a store URI",
            ),
        ] {
            let err = uri.parse::<StoreLocation>().unwrap_err().to_string();
            assert!(err.contains(expect), "{uri}: {err}");
        }
    }

    /// The refusal names the parameter, not its value: a credential pasted into a URI is
    /// what the error is about, and errors are logged.
    #[test]
    fn a_refused_uri_is_shown_without_its_credentials() {
        for (uri, shown) in [
            (
                "s3://bucket/p?region=eu-west-1&secret_access_key=hunter2",
                "s3://bucket/p?region=eu-west-1&secret_access_key=***",
            ),
            ("s3://AKIAEXAMPLE:hunter2@bucket/p", "s3://bucket/p"),
            (
                "s3://AKIAEXAMPLE:hunter2@bucket:x/p?k=hunter2",
                "s3://…@bucket:x/p",
            ),
        ] {
            let err = uri.parse::<StoreLocation>().unwrap_err();
            assert!(!format!("{err} {err:?}").contains("hunter2"), "{err:?}");
            let StoreError::InvalidUri { uri: said, .. } = err else {
                panic!("{uri}: not an invalid URI");
            };
            assert_eq!(said, shown);
        }
    }

    #[test]
    fn every_scheme_opens_an_operator_without_io() {
        for uri in [
            "memory://",
            "fs:///tmp/escher-store-test",
            "s3://b/p?region=eu-west-1&endpoint=http://127.0.0.1:5000",
            "azblob://c/p?account=devstoreaccount1&endpoint=http://127.0.0.1:10000/devstoreaccount1",
            "gcs://b/p?endpoint=http://127.0.0.1:4443&anonymous=true",
        ] {
            open(uri).unwrap_or_else(|e| panic!("{uri}: {e}"));
        }
        if std::env::var_os("AZURE_STORAGE_ACCOUNT").is_none() {
            let err = open("azblob://c/p").unwrap_err().to_string();
            assert!(err.contains("AZURE_STORAGE_ACCOUNT"), "{err}");
        }
    }

    #[tokio::test]
    async fn a_store_that_stops_answering_is_given_up_with_a_temporary_error() {
        // Accepts connections and never answers, as a hung endpoint does.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        let held = tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                open.push(socket);
            }
        });
        let location = parse(&format!(
            "gcs://escher-state?endpoint=http://{address}&anonymous=true"
        ));
        let operator = location
            .operator_within(None, Duration::from_millis(300), Duration::from_millis(300))
            .expect("an operator");
        let error = operator
            .read("markers/e-1.json")
            .await
            .expect_err("no answer");
        assert!(error.is_temporary(), "{error}");
        assert!(error.to_string().contains("timeout"), "{error}");
        let error = operator
            .stat("reports/latest.json")
            .await
            .expect_err("no answer");
        assert!(error.is_temporary(), "{error}");
        held.abort();
    }

    #[tokio::test]
    async fn whole_objects_of_every_size_are_read_from_a_local_folder() {
        let dir = std::env::temp_dir().join(format!("escher-read-{}", crate::ids::unique_token(8)));
        let operator = open(&format!("fs://{}", dir.display())).expect("fs store");
        // Empty, small, and larger than opendal's 2 MiB read buffer.
        let large: Vec<u8> = (0..3 * 1024 * 1024 + 17).map(|i| (i % 251) as u8).collect();
        for (name, body) in [
            ("empty.json", Vec::new()),
            ("incident.json", br#"{"event_id":"e-1"}"#.to_vec()),
            ("snapshot.tar", large),
        ] {
            operator.write(name, body.clone()).await.expect("written");
            let read = read_whole(&operator, name).await.expect("read");
            assert_eq!(read.to_vec(), body, "{name}");
        }
        let missing = read_whole(&operator, "missing.json")
            .await
            .expect_err("nothing there");
        assert_eq!(missing.kind(), opendal::ErrorKind::NotFound);
        std::fs::remove_dir_all(&dir).ok();
    }
}
