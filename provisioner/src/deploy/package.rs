//! Packaging the functions: building each `bootstrap` zip with cargo lambda, deciding when
//! a zip is stale, and checking that the binary inside runs on Lambda's `provided.al2023`.
//!
//! `make package` and `extend` both build through [`build_functions`], so the cargo lambda
//! command line exists once ([`cargo_lambda_build`]).

use std::collections::BTreeSet;
use std::fmt;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Instant, SystemTime};

use anyhow::{bail, Context as _};
use clap::Args;
use object::read::elf::{FileHeader, SectionTable};
use serde::Serialize;

use super::Function;
use crate::config::Architecture;

/// Amazon Linux 2023, the base of `provided.al2023`, ships glibc 2.34: a binary that needs
/// a newer symbol version does not start there.
pub const AL2023_GLIBC: GlibcVersion = GlibcVersion {
    major: 2,
    minor: 34,
    patch: 0,
};

/// What the functions' binaries are built from, relative to the workspace root. The
/// provisioner and the templates are not in a function, so changing them rebuilds nothing;
/// the policies are embedded into the handlers at build time, so they count.
pub const FUNCTION_SOURCES: &[&str] = &["Cargo.toml", "Cargo.lock", "handlers", "policies"];

/// A glibc symbol version (`GLIBC_2.2.5`, `GLIBC_2.34`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GlibcVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl GlibcVersion {
    /// Parses a version-needed name; `None` for other libraries' versions (`GCC_3.0`) and
    /// glibc's private ones (`GLIBC_PRIVATE`).
    pub fn from_version_name(name: &str) -> Option<GlibcVersion> {
        let numbers = name.strip_prefix("GLIBC_")?;
        let mut parts = numbers.split('.').map(|p| p.parse::<u32>().ok());
        let major = parts.next()??;
        let minor = parts.next()??;
        let patch = match parts.next() {
            Some(p) => p?,
            None => 0,
        };
        if parts.next().is_some() {
            return None;
        }
        Some(GlibcVersion {
            major,
            minor,
            patch,
        })
    }
}

impl fmt::Display for GlibcVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GLIBC_{}.{}", self.major, self.minor)?;
        if self.patch != 0 {
            write!(f, ".{}", self.patch)?;
        }
        Ok(())
    }
}

impl Serialize for GlibcVersion {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    #[error("{origin} is not a zip archive Lambda can read ({source}); the function needs a zip holding its `bootstrap` binary at the top (`make package` builds it)")]
    NotAZip {
        origin: String,
        source: zip::result::ZipError,
    },
    #[error("{origin} holds no `bootstrap` at its top level, so Lambda's provided.al2023 runtime has nothing to start; `make package` builds the zip with it")]
    NoBootstrap { origin: String },
    #[error("the `bootstrap` in {origin} is neither an ELF binary nor a `#!` script, so Lambda cannot run it; build it with `make package`")]
    NotExecutable { origin: String },
    #[error("the `bootstrap` in {origin} is not an ELF file object can read ({detail}); rebuild it with `make package`")]
    BadElf { origin: String, detail: String },
    #[error("the `bootstrap` in {origin} is built for {found} processors, but the functions run on {wanted} (escher.toml `[aws.functions] architecture`), so Lambda could not start it; build it for {wanted} (`make package`) or set `architecture = \"{found}\"`", found = found.as_lambda(), wanted = wanted.as_lambda())]
    WrongArchitecture {
        origin: String,
        found: Architecture,
        wanted: Architecture,
    },
    #[error("the `bootstrap` in {origin} is built for ELF machine {machine}, a processor Lambda does not run (it runs x86_64 and arm64); build it with `make package`")]
    NotALambdaProcessor { origin: String, machine: u16 },
    #[error("the `bootstrap` in {origin} needs {newest}, but Lambda's provided.al2023 has glibc {limit_major}.{limit_minor}, so the function would not start; build with `make package` (cargo lambda links against an old glibc with zig) or for a musl target", limit_major = AL2023_GLIBC.major, limit_minor = AL2023_GLIBC.minor)]
    GlibcTooNew {
        origin: String,
        newest: GlibcVersion,
    },
}

/// What the `bootstrap` of a function is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BootstrapKind {
    /// A dynamically or statically linked binary for `architecture`; `glibc` is the newest
    /// glibc symbol version it needs (none for a static or musl binary).
    Elf {
        architecture: Architecture,
        glibc: Option<GlibcVersion>,
    },
    /// A `#!` script (custom runtimes may be one); it runs on whatever the image has.
    Script,
}

/// The glibc symbol versions an ELF file needs (its `.gnu.version_r` entries), as
/// `objdump -T` / `readelf -V` show them.
pub fn glibc_requirements(
    elf: &[u8],
    origin: &str,
) -> Result<BTreeSet<GlibcVersion>, PackageError> {
    let bad = |e: object::read::Error| PackageError::BadElf {
        origin: origin.to_string(),
        detail: e.to_string(),
    };
    let names = match object::FileKind::parse(elf).map_err(bad)? {
        object::FileKind::Elf64 => {
            version_needs::<object::elf::FileHeader64<object::Endianness>>(elf)
        }
        object::FileKind::Elf32 => {
            version_needs::<object::elf::FileHeader32<object::Endianness>>(elf)
        }
        other => {
            return Err(PackageError::BadElf {
                origin: origin.to_string(),
                detail: format!("{other:?} is not an ELF file"),
            })
        }
    }
    .map_err(bad)?;
    Ok(names
        .iter()
        .filter_map(|n| GlibcVersion::from_version_name(n))
        .collect())
}

/// Every version name in the file's version-needed section (any library).
fn version_needs<Elf: FileHeader<Endian = object::Endianness>>(
    data: &[u8],
) -> object::read::Result<Vec<String>> {
    let header = Elf::parse(data)?;
    let endian = header.endian()?;
    let sections: SectionTable<'_, Elf> = header.sections(endian, data)?;
    let mut names = Vec::new();
    let Some((mut needs, strings_index)) = sections.gnu_verneed(endian, data)? else {
        return Ok(names);
    };
    let strings = sections.strings(endian, data, strings_index)?;
    while let Some((_, mut aux)) = needs.next()? {
        while let Some(entry) = aux.next()? {
            names.push(String::from_utf8_lossy(entry.name(endian, strings)?).into_owned());
        }
    }
    Ok(names)
}

/// The processor an ELF file is built for, among those Lambda runs.
pub fn elf_architecture(elf: &[u8], origin: &str) -> Result<Architecture, PackageError> {
    let bad = |e: object::read::Error| PackageError::BadElf {
        origin: origin.to_string(),
        detail: e.to_string(),
    };
    let machine = match object::FileKind::parse(elf).map_err(bad)? {
        object::FileKind::Elf64 => {
            let header =
                object::elf::FileHeader64::<object::Endianness>::parse(elf).map_err(bad)?;
            header.e_machine(header.endian().map_err(bad)?)
        }
        object::FileKind::Elf32 => {
            let header =
                object::elf::FileHeader32::<object::Endianness>::parse(elf).map_err(bad)?;
            header.e_machine(header.endian().map_err(bad)?)
        }
        other => {
            return Err(PackageError::BadElf {
                origin: origin.to_string(),
                detail: format!("{other:?} is not an ELF file"),
            })
        }
    };
    match machine {
        object::elf::EM_X86_64 => Ok(Architecture::X86_64),
        object::elf::EM_AARCH64 => Ok(Architecture::Arm64),
        machine => Err(PackageError::NotALambdaProcessor {
            origin: origin.to_string(),
            machine,
        }),
    }
}

/// Checks a `bootstrap` (its bytes): a `#!` script, or an ELF binary for a processor
/// Lambda runs that needs no glibc newer than [`AL2023_GLIBC`].
pub fn check_bootstrap(bytes: &[u8], origin: &str) -> Result<BootstrapKind, PackageError> {
    if bytes.starts_with(b"#!") {
        return Ok(BootstrapKind::Script);
    }
    if !bytes.starts_with(b"\x7fELF") {
        return Err(PackageError::NotExecutable {
            origin: origin.to_string(),
        });
    }
    let architecture = elf_architecture(bytes, origin)?;
    let newest = glibc_requirements(bytes, origin)?.into_iter().next_back();
    match newest {
        Some(v) if v > AL2023_GLIBC => Err(PackageError::GlibcTooNew {
            origin: origin.to_string(),
            newest: v,
        }),
        glibc => Ok(BootstrapKind::Elf {
            architecture,
            glibc,
        }),
    }
}

impl BootstrapKind {
    /// A binary must be built for the processor the functions are deployed on; a script
    /// runs on either.
    pub fn check_architecture(
        &self,
        wanted: Architecture,
        origin: &str,
    ) -> Result<(), PackageError> {
        match *self {
            BootstrapKind::Elf { architecture, .. } if architecture != wanted => {
                Err(PackageError::WrongArchitecture {
                    origin: origin.to_string(),
                    found: architecture,
                    wanted,
                })
            }
            _ => Ok(()),
        }
    }

    /// One line for people: the processor and the glibc it needs.
    pub fn describe(&self) -> String {
        match self {
            BootstrapKind::Elf {
                architecture,
                glibc: Some(v),
            } => format!(
                "{} binary, needs {v} (provided.al2023 has {AL2023_GLIBC})",
                architecture.as_lambda()
            ),
            BootstrapKind::Elf {
                architecture,
                glibc: None,
            } => format!(
                "{} binary, needs no glibc symbol version",
                architecture.as_lambda()
            ),
            BootstrapKind::Script => "a script".to_string(),
        }
    }
}

/// Reads the `bootstrap` out of a function zip and checks it.
pub fn check_zip(zip_bytes: &[u8], origin: &str) -> Result<BootstrapKind, PackageError> {
    let not_a_zip = |source| PackageError::NotAZip {
        origin: origin.to_string(),
        source,
    };
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip_bytes)).map_err(not_a_zip)?;
    let mut entry = match archive.by_name("bootstrap") {
        Ok(entry) => entry,
        Err(zip::result::ZipError::FileNotFound) => {
            return Err(PackageError::NoBootstrap {
                origin: origin.to_string(),
            })
        }
        Err(e) => return Err(not_a_zip(e)),
    };
    let mut bytes = Vec::new();
    entry
        .read_to_end(&mut bytes)
        .map_err(|e| not_a_zip(e.into()))?;
    check_bootstrap(&bytes, origin)
}

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
/// skipping build output (`target/`) and hidden entries.
pub fn newest_source(base: &Path, roots: &[&str]) -> anyhow::Result<Option<(PathBuf, SystemTime)>> {
    let mut newest: Option<(PathBuf, SystemTime)> = None;
    for root in roots {
        let walk = walkdir::WalkDir::new(base.join(root))
            .into_iter()
            .filter_entry(|e| {
                e.depth() == 0
                    || !(e.file_name() == "target"
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

    fn target_dir(&self) -> PathBuf {
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

    fn freshness_of(&self, zip: &Path) -> anyhow::Result<ZipFreshness> {
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
    if let Some(bin_dir) = cargo_lambda.parent().filter(|d| !d.as_os_str().is_empty()) {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut dirs = vec![bin_dir.to_path_buf()];
        dirs.extend(std::env::split_paths(&path));
        if let Ok(joined) = std::env::join_paths(dirs) {
            command.env("PATH", joined);
        }
    }
    command
}

/// cargo-lambda from PATH, else from the workspace's `.venv`, installed there from PyPI
/// (with zig) on first use.
fn cargo_lambda(workspace: &Workspace) -> anyhow::Result<PathBuf> {
    let venv = workspace.root.join(".venv");
    let installed = venv.join("bin").join("cargo-lambda");
    if installed.is_file() {
        return Ok(installed);
    }
    if let Some(found) = std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join("cargo-lambda"))
        .find(|p| p.is_file())
    {
        return Ok(found);
    }
    eprintln!(
        "installing cargo-lambda (and zig) from PyPI into {} (first build only)",
        venv.display()
    );
    if !venv.join("bin").join("pip").is_file() {
        run(Command::new("python3").arg("-m").arg("venv").arg(&venv), "python3 -m venv")
            .context("cargo-lambda is installed with pip into .venv, which needs python3 with the venv module")?;
    }
    run(
        Command::new(venv.join("bin").join("pip")).args([
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "cargo-lambda",
        ]),
        "pip install cargo-lambda",
    )?;
    Ok(installed)
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
fn run(command: &mut Command, what: &str) -> anyhow::Result<()> {
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
    eprintln!(
        "building the functions' binaries for this machine (cargo build --workspace --bins, debug)"
    );
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    run(
        Command::new(cargo)
            .current_dir(&workspace.root)
            .args(["build", "--workspace", "--bins"]),
        "cargo build --workspace --bins",
    )?;
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

/// The function binaries a `--bin` may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FunctionBinary {
    #[value(name = "escher-alert")]
    Alert,
    #[value(name = "escher-scan")]
    Scan,
}

impl From<FunctionBinary> for Function {
    fn from(b: FunctionBinary) -> Function {
        match b {
            FunctionBinary::Alert => Function::Alert,
            FunctionBinary::Scan => Function::Scan,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ArchArg {
    Arm64,
    #[value(name = "x86_64", alias = "x86-64")]
    X86_64,
}

impl From<ArchArg> for Architecture {
    fn from(a: ArchArg) -> Architecture {
        match a {
            ArchArg::Arm64 => Architecture::Arm64,
            ArchArg::X86_64 => Architecture::X86_64,
        }
    }
}

#[derive(Debug, Args)]
pub struct PackageArgs {
    /// CPU architecture (default: escher.toml `[aws.functions] architecture`, else arm64).
    #[arg(long, value_enum)]
    pub arch: Option<ArchArg>,
    /// Build only this binary (repeatable). Default: every function's binary.
    #[arg(long = "bin", value_enum, value_name = "BINARY")]
    pub bins: Vec<FunctionBinary>,
    /// Configuration file (for the architecture); default ./escher.toml when it exists.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print what was built as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// For an emulator such as moto, which stores the functions but never runs them (`make
    /// demo`): zip this machine's debug build (`cargo build --workspace --bins`; seconds once
    /// the CLI is built) instead of cargo lambda's release build, as DIR/alert.zip and
    /// DIR/scan.zip for `extend --artifacts DIR`. Built for this machine's processor, so
    /// deploy with `[aws.functions] architecture` set to it. Not for a real account.
    #[arg(long, value_name = "DIR", conflicts_with = "arch")]
    pub emulator: Option<PathBuf>,
}

/// `escher-provision package`: what `make package` runs.
pub fn package_command(args: PackageArgs) -> anyhow::Result<ExitCode> {
    let workspace = Workspace::of_this_build().context(
        "the sources this escher-provision was built from are not on this machine, so it cannot build the functions; run it from a clone of the repository",
    )?;
    let arch = match args.arch {
        Some(a) => a.into(),
        None => {
            crate::config::load_for_command(args.config.as_deref())?
                .0
                .aws
                .functions
                .architecture
        }
    };
    let functions: Vec<Function> = if args.bins.is_empty() {
        Function::ALL.to_vec()
    } else {
        args.bins.iter().map(|b| Function::from(*b)).collect()
    };
    let built = match &args.emulator {
        Some(out) => build_for_emulator(&workspace, &functions, out)?,
        None => build_functions(&workspace, arch, &functions)?,
    };
    if args.json {
        crate::output::write_json(&mut std::io::stdout().lock(), &built, true)?;
    } else {
        for b in &built {
            println!(
                "{}: {} ({} KiB, {}), {}",
                b.binary,
                b.zip.display(),
                b.bytes / 1024,
                b.build.describe(),
                b.bootstrap.describe()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn glibc_version_names_parse_and_order_numerically() {
        let v = |s| GlibcVersion::from_version_name(s).expect(s);
        assert!(v("GLIBC_2.2.5") < v("GLIBC_2.3"));
        assert!(v("GLIBC_2.9") < v("GLIBC_2.34"));
        assert!(v("GLIBC_2.34") < v("GLIBC_2.35"));
        assert_eq!(v("GLIBC_2.34"), AL2023_GLIBC);
        assert_eq!(v("GLIBC_2.2.5").to_string(), "GLIBC_2.2.5");
        for other in [
            "GLIBC_PRIVATE",
            "GCC_3.0",
            "GLIBCXX_3.4",
            "GLIBC_2",
            "GLIBC_2.x",
        ] {
            assert_eq!(GlibcVersion::from_version_name(other), None, "{other}");
        }
    }

    #[test]
    fn scripts_pass_and_other_bytes_are_refused() {
        assert_eq!(
            check_bootstrap(b"#!/bin/sh\nexec ./handler\n", "t").expect("a script"),
            BootstrapKind::Script
        );
        let err = check_bootstrap(b"MZ\x90\x00", "alert.zip").expect_err("a Windows binary");
        assert!(matches!(err, PackageError::NotExecutable { .. }), "{err}");
        let err = check_bootstrap(b"\x7fELF\x02\x01", "alert.zip").expect_err("truncated ELF");
        assert!(matches!(err, PackageError::BadElf { .. }), "{err}");
    }

    /// `readelf -V`'s version-needed names (`Name: GLIBC_2.34  Flags: ...`), when installed.
    fn readelf_glibc_versions(path: &Path) -> Option<BTreeSet<GlibcVersion>> {
        let out = Command::new("readelf").arg("-V").arg(path).output().ok()?;
        if !out.status.success() {
            return None;
        }
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let needs = text.split("Version needs section").nth(1)?.to_string();
        Some(
            needs
                .split_whitespace()
                .filter_map(GlibcVersion::from_version_name)
                .collect(),
        )
    }

    #[test]
    fn the_checker_reads_what_readelf_reads_from_a_real_binary() {
        // This test binary, linked against this machine's glibc by the normal toolchain.
        let exe = std::env::current_exe().expect("current exe");
        let bytes = std::fs::read(&exe).expect("read the test binary");
        let found = glibc_requirements(&bytes, "test binary").expect("parse");
        assert!(
            found.iter().any(|v| v.major == 2),
            "a binary linked against glibc needs at least one GLIBC_2.x version: {found:?}"
        );
        match readelf_glibc_versions(&exe) {
            Some(expected) => assert_eq!(found, expected, "compared with `readelf -V`"),
            None => eprintln!("NOTICE: readelf is not installed; the parse is not compared"),
        }
        let newest = found.iter().next_back().copied();
        match check_bootstrap(&bytes, "test binary") {
            Ok(kind) => {
                assert!(newest.is_none_or(|v| v <= AL2023_GLIBC));
                assert_eq!(
                    kind,
                    BootstrapKind::Elf {
                        architecture: this_machine().expect("a Lambda processor"),
                        glibc: newest
                    }
                );
            }
            Err(PackageError::GlibcTooNew {
                newest: reported, ..
            }) => {
                assert_eq!(Some(reported), newest);
                assert!(reported > AL2023_GLIBC);
            }
            Err(e) => panic!("{e}"),
        }
    }

    pub(crate) fn zip_of(name: &str, content: &[u8]) -> Vec<u8> {
        use std::io::Write as _;
        let mut out = std::io::Cursor::new(Vec::new());
        let mut w = zip::ZipWriter::new(&mut out);
        w.start_file(name, zip::write::SimpleFileOptions::default())
            .expect("start");
        w.write_all(content).expect("write");
        w.finish().expect("finish");
        out.into_inner()
    }

    #[test]
    fn a_zip_is_read_for_its_bootstrap() {
        let script = zip_of("bootstrap", b"#!/bin/sh\n");
        assert_eq!(
            check_zip(&script, "a.zip").expect("ok"),
            BootstrapKind::Script
        );
        let exe = std::fs::read(std::env::current_exe().expect("exe")).expect("read");
        let expected = check_bootstrap(&exe, "a.zip").map_err(|e| e.to_string());
        assert_eq!(
            check_zip(&zip_of("bootstrap", &exe), "a.zip").map_err(|e| e.to_string()),
            expected,
            "the same answer from inside the zip"
        );
        let err = check_zip(&zip_of("handler", b"#!/bin/sh\n"), "a.zip").expect_err("no bootstrap");
        assert!(matches!(err, PackageError::NoBootstrap { .. }), "{err}");
        let err = check_zip(b"PK\x03\x04garbage", "a.zip").expect_err("not a zip");
        assert!(matches!(err, PackageError::NotAZip { .. }), "{err}");
    }

    /// The other processor Lambda runs, for a binary that must be refused.
    fn other_than(arch: Architecture) -> Architecture {
        match arch {
            Architecture::Arm64 => Architecture::X86_64,
            Architecture::X86_64 => Architecture::Arm64,
        }
    }

    #[test]
    fn a_binary_for_the_other_processor_is_refused_by_name() {
        let exe = std::fs::read(std::env::current_exe().expect("exe")).expect("read");
        let here = this_machine().expect("a Lambda processor");
        assert_eq!(elf_architecture(&exe, "t").expect("elf"), here);
        let kind = check_zip(&zip_of("bootstrap", &exe), "alert.zip").expect("checks");
        kind.check_architecture(here, "alert.zip")
            .expect("built for this machine, deployed on it");
        let err = kind
            .check_architecture(other_than(here), "alert.zip")
            .expect_err("another processor");
        let text = err.to_string();
        assert!(
            matches!(err, PackageError::WrongArchitecture { found, wanted, .. } if found == here && wanted == other_than(here)),
            "{text}"
        );
        assert!(
            text.contains("alert.zip")
                && text.contains(here.as_lambda())
                && text.contains("[aws.functions] architecture"),
            "{text}"
        );
        // A script runs on either.
        BootstrapKind::Script
            .check_architecture(other_than(here), "a.zip")
            .expect("scripts have no processor");
        // A processor Lambda does not run (ELF machine 40 is 32-bit ARM).
        let mut arm32 = exe.clone();
        arm32[18..20].copy_from_slice(&40u16.to_le_bytes());
        let err = elf_architecture(&arm32, "a.zip").expect_err("not a Lambda processor");
        assert!(
            matches!(err, PackageError::NotALambdaProcessor { machine: 40, .. }),
            "{err}"
        );
    }

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
    fn the_newest_source_ignores_build_output_hidden_folders_and_the_cli() {
        let base = tempfile::tempdir().expect("dir");
        touch(&base.path().join("Cargo.lock"), at(10));
        touch(&base.path().join("handlers/aws/src/lib.rs"), at(20));
        touch(
            &base.path().join("handlers/core/fuzz/target/debug/x"),
            at(99),
        );
        touch(&base.path().join("handlers/.cache/x"), at(98));
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
