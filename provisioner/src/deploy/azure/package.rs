//! The Azure function package: one zip holding the Functions host's files
//! (`handlers/azure/host/`: host.json and a folder per function) and the custom handler
//! binary `escher-azure-functions` they name, checked before it is published: the files
//! the host needs are there, and the binary is an x86_64 Linux ELF that needs no glibc
//! newer than the Functions workers' (Debian bullseye, 2.31).
//!
//! Built with `cargo zigbuild --target x86_64-unknown-linux-gnu.2.31` (zig links against
//! that glibc), or for the Resource Manager stand-in from this machine's debug build.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context as _};

use crate::config::Architecture;
use crate::deploy::package::bootstrap::{elf_architecture, glibc_requirements, GlibcVersion};
use crate::deploy::package::build::{
    build_debug_binaries, pip_tool, run, with_tool_path, Workspace, ZipFreshness,
};

/// The zip's name in `--artifacts DIR` and under `target/azure/`.
pub const PACKAGE_FILE: &str = "azure-functions.zip";
/// The custom handler, as host.json's `defaultExecutablePath` names it.
pub const HANDLER_BINARY: &str = "escher-azure-functions";
/// The functions the host lists once the package runs.
pub const FUNCTIONS: [&str; 3] = ["alert", "events", "nightly"];
/// Debian bullseye's glibc, the oldest Functions worker image.
pub const WORKER_GLIBC: GlibcVersion = GlibcVersion {
    major: 2,
    minor: 31,
    patch: 0,
};
/// The zig-linked target that needs no newer glibc.
const ZIG_TARGET: &str = "x86_64-unknown-linux-gnu.2.31";

/// A package read and checked, ready to publish.
#[derive(Debug, Clone)]
pub struct FunctionsPackage {
    pub path: PathBuf,
    pub bytes: Vec<u8>,
    pub sha256: String,
    /// The newest glibc the handler needs, when it is above [`WORKER_GLIBC`]: only
    /// acceptable for a stand-in that never runs it.
    pub glibc_too_new: Option<GlibcVersion>,
}

impl FunctionsPackage {
    /// Reads and checks `path`.
    pub fn read(path: &Path) -> anyhow::Result<FunctionsPackage> {
        let bytes = std::fs::read(path).with_context(|| {
            format!(
                "cannot read the function package {}; build it with `escher-provision package --cloud azure`",
                path.display()
            )
        })?;
        let glibc_too_new = check(&bytes, &path.display().to_string())?;
        Ok(FunctionsPackage {
            path: path.to_path_buf(),
            sha256: escher_core::ids::sha256_hex(&bytes),
            bytes,
            glibc_too_new,
        })
    }

    /// The refusal for a real subscription when the handler needs a newer glibc.
    pub fn require_worker_glibc(&self) -> anyhow::Result<()> {
        match self.glibc_too_new {
            Some(newest) => bail!(
                "the custom handler in {} needs {newest}, but the Functions workers (Debian bullseye) have glibc {}.{}, so the functions would not start; build the package with `escher-provision package --cloud azure` (cargo zigbuild links against glibc 2.31)",
                self.path.display(),
                WORKER_GLIBC.major,
                WORKER_GLIBC.minor
            ),
            None => Ok(()),
        }
    }
}

/// Checks a package's contents; returns the handler's glibc when it is too new for the
/// workers (the caller decides whether that is fatal).
pub fn check(zip_bytes: &[u8], origin: &str) -> anyhow::Result<Option<GlibcVersion>> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip_bytes))
        .with_context(|| format!("{origin} is not a zip file"))?;
    for needed in ["host.json".to_string()]
        .into_iter()
        .chain(FUNCTIONS.iter().map(|f| format!("{f}/function.json")))
    {
        if archive.by_name(&needed).is_err() {
            bail!("{origin} has no {needed}: the Functions host needs it; build the package with `escher-provision package --cloud azure`");
        }
    }
    let mut handler = archive.by_name(HANDLER_BINARY).with_context(|| {
        format!("{origin} has no {HANDLER_BINARY}, the custom handler host.json starts")
    })?;
    if handler.unix_mode().is_some_and(|mode| mode & 0o111 == 0) {
        bail!(
            "{HANDLER_BINARY} in {origin} is not executable: the Functions host could not start it"
        );
    }
    let mut elf = Vec::new();
    handler
        .read_to_end(&mut elf)
        .with_context(|| format!("cannot read {HANDLER_BINARY} in {origin}"))?;
    let what = format!("{HANDLER_BINARY} in {origin}");
    let architecture = elf_architecture(&elf, &what)?;
    if architecture != Architecture::X86_64 {
        bail!("{what} is built for {architecture:?}; Flex Consumption runs x86_64 only");
    }
    let newest = glibc_requirements(&elf, &what)?.into_iter().next_back();
    Ok(newest.filter(|v| *v > WORKER_GLIBC))
}

/// Zips the host's files from `host_dir` and the handler binary.
pub fn assemble(host_dir: &Path, handler: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut out = std::io::Cursor::new(Vec::new());
    let mut zip = zip::ZipWriter::new(&mut out);
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .compression_level(Some(1))
        .last_modified_time(zip::DateTime::default());
    let mut files: Vec<(String, PathBuf)> = vec![("host.json".into(), host_dir.join("host.json"))];
    for function in FUNCTIONS {
        files.push((
            format!("{function}/function.json"),
            host_dir.join(function).join("function.json"),
        ));
    }
    for (name, path) in files {
        let text =
            std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        zip.start_file(name, options.unix_permissions(0o644))?;
        zip.write_all(&text)?;
    }
    zip.start_file(HANDLER_BINARY, options.unix_permissions(0o755))?;
    zip.write_all(handler)?;
    zip.finish()?;
    Ok(out.into_inner())
}

/// Where `package --cloud azure` writes the release package.
pub fn default_package(workspace: &Workspace) -> PathBuf {
    workspace.target_dir().join("azure").join(PACKAGE_FILE)
}

/// Builds the release package with cargo zigbuild, as `package --cloud azure` and
/// `extend --cloud azure` (when the package is missing or stale) do.
pub fn build_release(workspace: &Workspace) -> anyhow::Result<PathBuf> {
    let out = default_package(workspace);
    if let ZipFreshness::Fresh = workspace.freshness_of(&out)? {
        eprintln!("{} is up to date", out.display());
        return Ok(out);
    }
    // cargo-zigbuild links the handler with zig against the Functions workers' glibc 2.31.
    let zigbuild = pip_tool(
        workspace,
        "cargo-zigbuild",
        &["cargo-zigbuild", "ziglang"],
        "cargo-zigbuild and zig",
    )?;
    eprintln!("building {HANDLER_BINARY} for the Functions workers (cargo zigbuild --release --target {ZIG_TARGET})");
    let mut command = Command::new(&zigbuild);
    command
        .current_dir(&workspace.root)
        .args(["zigbuild", "--release", "--target", ZIG_TARGET])
        .args(["-p", "escher-azure", "--bin", HANDLER_BINARY]);
    with_tool_path(&mut command, &zigbuild);
    run(&mut command, "cargo zigbuild")?;
    let binary = workspace
        .target_dir()
        .join("x86_64-unknown-linux-gnu")
        .join("release")
        .join(HANDLER_BINARY);
    write_package(workspace, &binary, &out)?;
    Ok(out)
}

/// The package from this machine's debug build, for the Resource Manager stand-in (which
/// never runs it): `cargo build --workspace --bins`, then zipped into `dir`.
pub fn build_for_stand_in(workspace: &Workspace, dir: &Path) -> anyhow::Result<PathBuf> {
    build_debug_binaries(workspace)?;
    let binary = workspace.target_dir().join("debug").join(HANDLER_BINARY);
    let out = dir.join(PACKAGE_FILE);
    write_package(workspace, &binary, &out)?;
    Ok(out)
}

fn write_package(workspace: &Workspace, binary: &Path, out: &Path) -> anyhow::Result<()> {
    let handler =
        std::fs::read(binary).with_context(|| format!("cannot read {}", binary.display()))?;
    let zip = assemble(&workspace.root.join("handlers/azure/host"), &handler)?;
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    std::fs::write(out, zip).with_context(|| format!("cannot write {}", out.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../handlers/azure/host")
    }

    fn this_test_binary() -> Vec<u8> {
        std::fs::read(std::env::current_exe().expect("test binary")).expect("read")
    }

    #[test]
    fn the_package_holds_the_host_files_and_an_executable_handler() {
        let zip = assemble(&host_dir(), &this_test_binary()).expect("zip");
        check(&zip, "package").expect("a complete package");
        let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip)).expect("zip");
        let handler = archive.by_name(HANDLER_BINARY).expect("handler");
        assert_eq!(handler.unix_mode().map(|m| m & 0o777), Some(0o755));
    }

    #[test]
    fn a_package_missing_a_function_or_the_handler_is_refused_by_name() {
        let mut out = std::io::Cursor::new(Vec::new());
        let mut zip = zip::ZipWriter::new(&mut out);
        let options = zip::write::SimpleFileOptions::default();
        zip.start_file("host.json", options).expect("file");
        zip.write_all(b"{}").expect("write");
        zip.finish().expect("finish");
        let error = check(&out.into_inner(), "p.zip").expect_err("incomplete");
        assert!(error.to_string().contains("alert/function.json"), "{error}");
    }

    #[test]
    fn a_handler_linked_against_a_newer_glibc_is_named_with_its_version() {
        // This machine's glibc is newer than the workers'; a handler built here normally
        // needs a symbol version above 2.31.
        let zip = assemble(&host_dir(), &this_test_binary()).expect("zip");
        let package = FunctionsPackage {
            path: "p.zip".into(),
            sha256: String::new(),
            glibc_too_new: check(&zip, "p.zip").expect("checked"),
            bytes: zip,
        };
        match package.glibc_too_new {
            Some(v) => {
                assert!(v > WORKER_GLIBC);
                let error = package.require_worker_glibc().expect_err("refused");
                assert!(error.to_string().contains(&v.to_string()), "{error}");
            }
            None => package.require_worker_glibc().expect("old enough"),
        }
    }
}
