//! The Cloud Run service's container image, assembled here without Docker: one layer holding
//! the handler binary, the shared libraries it loads (found from its ELF dynamic section,
//! read from this machine, so they match the glibc it was built against), the dynamic loader
//! and the CA certificates its TLS verifier reads; an OCI image config that runs it as a
//! non-root user. Every entry has a fixed time and owner and the layer is compressed the same
//! way each time, so the same binary gives the same image digest: a re-run with nothing
//! changed pushes nothing and Infrastructure Manager sees no change.
//!
//! [`push`] sends it to the project's Artifact Registry (`oci-client`, with the caller's
//! Google access token) and answers with the digest reference Cloud Run deploys.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use flate2::write::GzEncoder;
use flate2::Compression;
use object::elf::{FileHeader64, DT_NEEDED, PT_INTERP};
use object::read::elf::{Dyn as _, FileHeader, ProgramHeader as _};
use object::Endianness;
use oci_client::client::{Config, ImageLayer};
use oci_client::manifest::OciImageManifest;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use serde_json::json;
use sha2::{Digest as _, Sha256};

/// Where the handler sits in the image, and what runs.
pub const ENTRYPOINT: &str = "/escher-gcp-service";
/// distroless's `nonroot`: the service needs no privileges inside its container.
const NON_ROOT: &str = "65532:65532";
/// Where Debian-based images (and rustls-native-certs) look for the CA bundle.
const CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";
/// The folders the dynamic loader searches on a Debian/Ubuntu x86-64 machine.
const LIBRARY_DIRS: [&str; 6] = [
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib64",
    "/usr/lib64",
    "/lib",
    "/usr/lib",
];

/// Why the image could not be made or pushed.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("{path} could not be read ({source}); build the handler with `cargo build --release -p escher-gcp --bin escher-gcp-service`")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a 64-bit Linux program ({message})")]
    NotElf { path: PathBuf, message: String },
    #[error("{binary} needs {library}, which is in none of {dirs}; install it, or build the handler on a machine that has it")]
    MissingLibrary {
        binary: String,
        library: String,
        dirs: String,
    },
    #[error("the image layer could not be written ({0})")]
    Layer(#[source] std::io::Error),
    #[error("pushing the image to {reference} failed: {message}; check that the Artifact Registry repository exists and that you may write to it (roles/artifactregistry.writer)")]
    Push { reference: String, message: String },
}

/// The image, ready to push.
#[derive(Debug, Clone)]
pub struct HandlerImage {
    layer: Vec<u8>,
    config: Vec<u8>,
}

impl HandlerImage {
    /// `sha256:…` of the compressed layer.
    #[cfg(test)]
    pub fn layer_digest(&self) -> String {
        sha256(&self.layer)
    }

    /// `sha256:…` of the image config, which names the layer's content.
    pub fn config_digest(&self) -> String {
        sha256(&self.config)
    }

    /// The gzip-compressed layer (a tar stream).
    #[cfg(test)]
    pub fn layer(&self) -> &[u8] {
        &self.layer
    }

    /// The reference [`push`] answers for this image in `repository`, computed without the
    /// registry: the digest of the manifest as oci-client sends it (canonical JSON). A dry
    /// run previews with it and pushes nothing.
    pub fn reference_in(&self, repository: &Repository) -> String {
        use serde::Serialize as _;
        let (_, _, manifest) = self.manifest();
        let mut body = Vec::new();
        let mut writer = serde_json::Serializer::with_formatter(
            &mut body,
            olpc_cjson::CanonicalFormatter::new(),
        );
        // Serializing plain data into a Vec cannot fail.
        let _ = oci_client::manifest::OciManifest::Image(manifest).serialize(&mut writer);
        format!(
            "{}/{}@{}",
            repository.registry,
            repository.path,
            sha256(&body)
        )
    }

    /// The manifest pushed for this image.
    fn manifest(&self) -> (Vec<ImageLayer>, Config, OciImageManifest) {
        let layers = vec![ImageLayer::oci_v1_gzip(self.layer.clone(), None)];
        let config = Config::oci_v1(self.config.clone(), None);
        let mut manifest = OciImageManifest::build(&layers, &config, None);
        // Optional in the spec, but registries (Artifact Registry among them) tell an image
        // from an index by it.
        manifest.media_type = Some(oci_client::manifest::OCI_IMAGE_MEDIA_TYPE.to_string());
        (layers, config, manifest)
    }
}

fn sha256(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// Assembles the image of `binary`, with its libraries and the CA bundle from `root` (`/` on
/// the machine that built it).
pub fn assemble(binary: &Path, root: &Path) -> Result<HandlerImage, ImageError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|source| ImageError::Read {
            path: path.to_path_buf(),
            source,
        })
    };
    let program = read(binary)?;
    let (interpreter, _) = dynamic_needs(&program, binary)?;
    // Every library the binary loads, and the ones those load, once each.
    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut queue: Vec<(String, String)> = dynamic_needs(&program, binary)?
        .1
        .into_iter()
        .map(|library| (binary.display().to_string(), library))
        .collect();
    let mut seen = BTreeSet::new();
    while let Some((needed_by, library)) = queue.pop() {
        if !seen.insert(library.clone()) {
            continue;
        }
        let found = LIBRARY_DIRS
            .iter()
            .map(|dir| Path::new(dir).join(&library))
            .find(|path| under(root, path).is_file())
            .ok_or_else(|| ImageError::MissingLibrary {
                binary: needed_by.clone(),
                library: library.clone(),
                dirs: LIBRARY_DIRS.join(", "),
            })?;
        let bytes = read(&under(root, &found))?;
        for next in dynamic_needs(&bytes, &found)?.1 {
            queue.push((found.display().to_string(), next));
        }
        files.insert(found.display().to_string(), bytes);
    }
    if let Some(loader) = interpreter {
        let bytes = read(&under(root, Path::new(&loader)))?;
        files.insert(loader, bytes);
    }
    let bundle = under(root, Path::new(CA_BUNDLE));
    files.insert(CA_BUNDLE.to_string(), read(&bundle)?);

    let mut tar = tar::Builder::new(Vec::new());
    let mut folders = BTreeSet::new();
    for path in files.keys().map(String::as_str).chain([ENTRYPOINT]) {
        let mut parent = Path::new(path).parent();
        while let Some(folder) = parent.filter(|p| *p != Path::new("/")) {
            folders.insert(folder.to_path_buf());
            parent = folder.parent();
        }
    }
    for folder in &folders {
        append(&mut tar, folder, tar::EntryType::Directory, 0o755, &[])?;
    }
    append(
        &mut tar,
        Path::new(ENTRYPOINT),
        tar::EntryType::Regular,
        0o755,
        &program,
    )?;
    for (path, bytes) in &files {
        append(
            &mut tar,
            Path::new(path),
            tar::EntryType::Regular,
            0o755,
            bytes,
        )?;
    }
    let uncompressed = tar.into_inner().map_err(ImageError::Layer)?;
    let mut gzip = GzEncoder::new(Vec::new(), Compression::default());
    gzip.write_all(&uncompressed).map_err(ImageError::Layer)?;
    let layer = gzip.finish().map_err(ImageError::Layer)?;
    let config = json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Entrypoint": [ENTRYPOINT],
            "User": NON_ROOT,
            "Env": ["SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"],
        },
        "rootfs": {"type": "layers", "diff_ids": [sha256(&uncompressed)]},
        "history": [{"created_by": "escher-provision extend --cloud gcp"}],
    });
    Ok(HandlerImage {
        layer,
        config: serde_json::to_vec(&config).map_err(|e| ImageError::Layer(e.into()))?,
    })
}

/// `path` inside `root`.
fn under(root: &Path, path: &Path) -> PathBuf {
    root.join(path.strip_prefix("/").unwrap_or(path))
}

/// One tar entry with a fixed time and owner, so the layer's bytes depend on content only.
fn append(
    tar: &mut tar::Builder<Vec<u8>>,
    path: &Path,
    kind: tar::EntryType,
    mode: u32,
    bytes: &[u8],
) -> Result<(), ImageError> {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(kind);
    header.set_mode(mode);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_size(bytes.len() as u64);
    let name = path.strip_prefix("/").unwrap_or(path);
    tar.append_data(&mut header, name, bytes)
        .map_err(ImageError::Layer)
}

/// The program's loader (`PT_INTERP`) and the libraries it names (`DT_NEEDED`).
fn dynamic_needs(elf: &[u8], path: &Path) -> Result<(Option<String>, Vec<String>), ImageError> {
    let bad = |message: String| ImageError::NotElf {
        path: path.to_path_buf(),
        message,
    };
    let header = FileHeader64::<Endianness>::parse(elf).map_err(|e| bad(e.to_string()))?;
    let endian = header.endian().map_err(|e| bad(e.to_string()))?;
    let mut interpreter = None;
    for segment in header
        .program_headers(endian, elf)
        .map_err(|e| bad(e.to_string()))?
    {
        if segment.p_type(endian) == PT_INTERP {
            let bytes = segment
                .data(endian, elf)
                .map_err(|()| bad("its loader path cannot be read".into()))?;
            let text = String::from_utf8_lossy(bytes);
            interpreter = Some(text.trim_end_matches('\0').to_string());
        }
    }
    let sections = header
        .sections(endian, elf)
        .map_err(|e| bad(e.to_string()))?;
    let mut needed = Vec::new();
    // A static program has no dynamic section: it needs nothing.
    if let Some((entries, strings_index)) = sections
        .dynamic(endian, elf)
        .map_err(|e| bad(e.to_string()))?
    {
        let strings = sections
            .strings(endian, elf, strings_index)
            .map_err(|e| bad(e.to_string()))?;
        for entry in entries {
            if entry.tag32(endian) == Some(DT_NEEDED as i32) {
                let name = entry
                    .string(endian, strings)
                    .map_err(|e| bad(e.to_string()))?;
                needed.push(String::from_utf8_lossy(name).into_owned());
            }
        }
    }
    Ok((interpreter, needed))
}

/// Where the image goes: `{region}-docker.pkg.dev/{project}/{repository}/escher-handler`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repository {
    /// `europe-west1-docker.pkg.dev` (or a test registry's `127.0.0.1:port`).
    pub registry: String,
    /// `project/repository/escher-handler`.
    pub path: String,
    /// Plain HTTP (a registry on loopback in tests); Artifact Registry is HTTPS.
    pub insecure: bool,
}

impl Repository {
    pub fn artifact_registry(region: &str, project: &str, repository: &str) -> Repository {
        Repository {
            registry: format!("{region}-docker.pkg.dev"),
            path: format!("{project}/{repository}/escher-handler"),
            insecure: false,
        }
    }

    /// A registry answering at `endpoint` (`http://127.0.0.1:port`, a stand-in for
    /// Artifact Registry): plain HTTP unless the endpoint is `https://`.
    pub fn at_endpoint(endpoint: &str, project: &str, repository: &str) -> Repository {
        let insecure = !endpoint.starts_with("https://");
        let host = endpoint
            .trim_start_matches("https://")
            .trim_start_matches("http://")
            .trim_end_matches('/');
        Repository {
            registry: host.split('/').next().unwrap_or(host).to_string(),
            path: format!("{project}/{repository}/escher-handler"),
            insecure,
        }
    }
}

/// What [`push`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    /// `registry/path@sha256:…`: the reference Cloud Run deploys (a digest, never a tag).
    pub reference: String,
    /// The registry already had this image: nothing was uploaded.
    pub already_there: bool,
}

/// Pushes `image` unless the registry holds it already. `token`: a Google access token
/// (Artifact Registry takes it as the password of the user `oauth2accesstoken`).
pub async fn push(
    image: &HandlerImage,
    repository: &Repository,
    token: &str,
) -> Result<Pushed, ImageError> {
    // The tag names the content, so an unchanged image is found by it.
    let tag = format!(
        "escher-{}",
        &image.config_digest().trim_start_matches("sha256:")[..16]
    );
    let name = format!("{}/{}:{tag}", repository.registry, repository.path);
    let failed = |message: String| ImageError::Push {
        reference: name.clone(),
        message,
    };
    let reference: Reference = name.parse().map_err(|e| failed(format!("{e}")))?;
    let protocol = if repository.insecure {
        oci_client::client::ClientProtocol::Http
    } else {
        oci_client::client::ClientProtocol::Https
    };
    let client = Client::new(oci_client::client::ClientConfig {
        protocol,
        ..Default::default()
    });
    let auth = RegistryAuth::Basic("oauth2accesstoken".into(), token.to_string());
    let (layers, config, manifest) = image.manifest();
    let already_there = match client.pull_image_manifest(&reference, &auth).await {
        Ok((found, _)) => found.config.digest == manifest.config.digest,
        Err(_) => false,
    };
    if !already_there {
        client
            .push(&reference, &layers, config, &auth, Some(manifest))
            .await
            .map_err(|e| failed(e.to_string()))?;
    }
    let digest = client
        .fetch_manifest_digest(&reference, &auth)
        .await
        .map_err(|e| failed(format!("the pushed image cannot be read back ({e})")))?;
    Ok(Pushed {
        reference: format!("{}/{}@{digest}", repository.registry, repository.path),
        already_there,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::io::Read as _;
    use std::sync::Arc;

    use super::*;

    /// A small dynamically linked program every Debian machine has stands in for the handler.
    const STAND_IN: &str = "/bin/ls";

    #[test]
    fn artifact_registry_names_the_image_by_region_project_and_repository() {
        let repository = Repository::artifact_registry("europe-west1", "shop-prod-4711", "escher");
        assert_eq!(repository.registry, "europe-west1-docker.pkg.dev");
        assert_eq!(repository.path, "shop-prod-4711/escher/escher-handler");
        assert!(!repository.insecure);
    }

    fn entries(image: &HandlerImage) -> BTreeMap<String, (u32, Vec<u8>)> {
        let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(image.layer()));
        let mut found = BTreeMap::new();
        for entry in tar.entries().expect("a tar") {
            let mut entry = entry.expect("an entry");
            let path = entry.path().expect("a path").display().to_string();
            let mode = entry.header().mode().expect("a mode");
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).expect("readable");
            found.insert(path, (mode, bytes));
        }
        found
    }

    #[test]
    fn the_image_holds_the_program_its_libraries_loader_and_certificates_and_runs_it_unprivileged()
    {
        let program = Path::new(STAND_IN);
        let image = assemble(program, Path::new("/")).expect("an image");
        let layer = entries(&image);
        let (mode, bytes) = &layer["escher-gcp-service"];
        assert_eq!(*mode, 0o755);
        assert_eq!(bytes, &std::fs::read(program).expect("read"));
        assert!(
            layer.keys().any(|p| p.ends_with("/libc.so.6")),
            "{:?}",
            layer.keys()
        );
        assert!(
            layer.keys().any(|p| p.contains("ld-linux")),
            "{:?}",
            layer.keys()
        );
        assert!(layer.contains_key("etc/ssl/certs/ca-certificates.crt"));
        let config: serde_json::Value = serde_json::from_slice(&image.config).expect("JSON");
        assert_eq!(config["config"]["Entrypoint"], json!([ENTRYPOINT]));
        assert_eq!(config["config"]["User"], "65532:65532");
        assert_eq!(config["os"], "linux");

        let again = assemble(program, Path::new("/")).expect("an image");
        assert_eq!(
            again.layer_digest(),
            image.layer_digest(),
            "the same program gives the same layer"
        );
        assert_eq!(again.config_digest(), image.config_digest());
    }

    #[test]
    fn a_library_this_machine_lacks_is_named() {
        let root = tempfile::tempdir().expect("tempdir");
        let error = assemble(Path::new(STAND_IN), root.path())
            .expect_err("no libraries under an empty root");
        let text = error.to_string();
        assert!(matches!(error, ImageError::MissingLibrary { .. }), "{text}");
        assert!(text.contains(".so"), "{text}");

        let script = root.path().join("handler.sh");
        std::fs::write(&script, "#!/bin/sh\n").expect("write");
        let error = assemble(&script, Path::new("/")).expect_err("not a program");
        assert!(matches!(error, ImageError::NotElf { .. }), "{error}");
    }

    #[tokio::test]
    async fn the_image_is_pushed_once_and_named_by_its_digest() {
        let storage = tempfile::tempdir().expect("tempdir");
        let users: HashMap<String, sec::Secret<String>> = HashMap::from([(
            "oauth2accesstoken".to_string(),
            sec::Secret::new("ya29.registry-token".to_string()),
        )]);
        let registry = container_registry::ContainerRegistry::builder()
            .storage(storage.path())
            .auth_provider(Arc::new(users))
            .build()
            .expect("a registry");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        let app = registry.make_router();
        tokio::spawn(async move {
            let _ = axum07::serve(listener, app).await;
        });
        let repository = Repository {
            registry: address.to_string(),
            path: "escher/escher-handler".into(),
            insecure: true,
        };
        let image = assemble(Path::new(STAND_IN), Path::new("/")).expect("an image");

        let first = push(&image, &repository, "ya29.registry-token")
            .await
            .expect("pushed");
        assert!(!first.already_there);
        assert_eq!(
            first.reference,
            image.reference_in(&repository),
            "a dry run names the image as the push does"
        );
        assert!(
            first
                .reference
                .starts_with(&format!("{address}/escher/escher-handler@sha256:")),
            "{}",
            first.reference
        );
        let second = push(&image, &repository, "ya29.registry-token")
            .await
            .expect("pushed");
        assert!(
            second.already_there,
            "an unchanged image is not uploaded again"
        );
        assert_eq!(second.reference, first.reference);

        let error = push(&image, &repository, "ya29.someone-else")
            .await
            .expect_err("refused");
        assert!(
            error.to_string().contains("roles/artifactregistry.writer"),
            "{error}"
        );
    }
}
