//! Packaging the functions: finding each function's zip for `extend` (given, or built
//! here when missing or stale) and the `package` command. [`build`] holds the builds,
//! [`bootstrap`] the checks that the binary inside runs on Lambda's `provided.al2023`.
//!
//! `make package` and `extend` both build through [`build_functions`], so the cargo lambda
//! command line exists once ([`build::cargo_lambda_build`]).

pub mod bootstrap;
pub mod build;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use clap::Args;

use super::Function;
use crate::config::Architecture;
pub use bootstrap::check_zip;
pub use build::{build_for_emulator, build_functions, Workspace, ZipFreshness};

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
    /// Whose functions: `aws` (cargo lambda zips) or `azure` (the Functions package
    /// `azure-functions.zip`: host.json, the function folders and the custom handler, built
    /// with cargo zigbuild against glibc 2.31, into target/azure/).
    #[arg(long, value_enum, default_value = "aws")]
    pub cloud: crate::cloud::Cloud,
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
    match args.cloud {
        crate::cloud::Cloud::Aws => {}
        crate::cloud::Cloud::Azure => {
            use crate::deploy::azure::package;
            let path = match &args.emulator {
                Some(dir) => package::build_for_stand_in(&workspace, dir)?,
                None => package::build_release(&workspace)?,
            };
            let checked = package::FunctionsPackage::read(&path)?;
            if args.emulator.is_none() {
                checked.require_worker_glibc()?;
            }
            if args.json {
                println!(
                    "{}",
                    serde_json::json!({"package": path, "bytes": checked.bytes.len(), "sha256": checked.sha256})
                );
            } else {
                println!(
                    "{}: {} KiB, sha256 {}",
                    path.display(),
                    checked.bytes.len() / 1024,
                    checked.sha256
                );
            }
            return Ok(ExitCode::SUCCESS);
        }
        cloud @ crate::cloud::Cloud::Gcp => {
            return Err(crate::cloud::NoPackage::BuiltByExtend(cloud).into())
        }
    }
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

/// One function's zip, read and hashed: the key it is stored under is its SHA-256, so
/// unchanged code is never uploaded twice and never updates the function.
#[derive(Debug, Clone)]
pub struct FunctionPackage {
    pub function: Function,
    pub path: PathBuf,
    pub bytes: Vec<u8>,
    /// `<sha256 hex>.zip`
    pub key: String,
}

impl FunctionPackage {
    pub fn from_bytes(function: Function, path: PathBuf, bytes: Vec<u8>) -> Self {
        let hex = escher_core::ids::sha256_hex(&bytes);
        FunctionPackage {
            function,
            path,
            bytes,
            key: format!("{hex}.zip"),
        }
    }
}

/// Packaging: finds each function's zip and checks the `bootstrap` in it starts on
/// provided.al2023. From `--artifacts DIR` (`DIR/<function>.zip`, used as given, never
/// rebuilt), else cargo lambda's output in the workspace this CLI was built from, built
/// first when missing or older than the functions' sources ([`FUNCTION_SOURCES`]).
pub fn locate_packages(
    artifacts_dir: Option<&Path>,
    functions: &[Function],
    arch: Architecture,
    build: bool,
) -> anyhow::Result<Vec<FunctionPackage>> {
    let workspace = Workspace::of_this_build();
    let path_of = |function: Function| match (artifacts_dir, &workspace) {
        (Some(dir), _) => dir.join(format!("{}.zip", function.name())),
        (None, Some(ws)) => ws.lambda_zip(function),
        (None, None) => Path::new("target/lambda")
            .join(function.binary())
            .join("bootstrap.zip"),
    };
    if let (None, Some(ws)) = (artifacts_dir, &workspace) {
        let mut to_build = Vec::new();
        for &function in functions {
            match ws.zip_freshness(function)? {
                ZipFreshness::Fresh => {}
                ZipFreshness::Missing => {
                    eprintln!(
                        "the {} function's zip {} is missing: building it",
                        function.name(),
                        path_of(function).display()
                    );
                    to_build.push(function);
                }
                ZipFreshness::Stale { newer } => {
                    eprintln!(
                        "the {} function's zip {} is older than {}",
                        function.name(),
                        path_of(function).display(),
                        newer.display()
                    );
                    to_build.push(function);
                }
            }
        }
        if !to_build.is_empty() && build {
            build_functions(ws, arch, &to_build)?;
        } else if !to_build.is_empty() {
            eprintln!("--no-build: not building");
        }
    }
    let mut packages = Vec::new();
    let mut missing = Vec::new();
    for &function in functions {
        let path = path_of(function);
        match std::fs::read(&path) {
            Ok(bytes) if is_zip(&bytes) => {
                let origin = path.display().to_string();
                check_zip(&bytes, &origin)?.check_architecture(arch, &origin)?;
                packages.push(FunctionPackage::from_bytes(function, path, bytes))
            }
            Ok(_) => bail!(
                "{} is not a zip file; the {} function needs a zip holding its `bootstrap` binary (`make package` builds it)",
                path.display(),
                function.name()
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                missing.push((function, path))
            }
            Err(e) => {
                return Err(e).with_context(|| format!("cannot read {}", path.display()))
            }
        }
    }
    if !missing.is_empty() {
        let list: Vec<String> = missing
            .iter()
            .map(|(f, p)| {
                format!(
                    "{} function: {} (binary {})",
                    f.name(),
                    p.display(),
                    f.binary()
                )
            })
            .collect();
        bail!(
            "the functions' zips are missing:\n  {}\nbuild them with `make package` (cargo lambda; `target/lambda/<binary>/bootstrap.zip`), or pass --artifacts DIR holding `alert.zip` and `scan.zip`",
            list.join("\n  ")
        );
    }
    Ok(packages)
}

fn is_zip(bytes: &[u8]) -> bool {
    bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06")
}

#[cfg(test)]
mod tests {
    use super::*;

    use bootstrap::tests::zip_of;
    use build::this_machine;

    #[test]
    fn zip_keys_are_the_sha256_of_the_content() {
        let a = FunctionPackage::from_bytes(Function::Alert, "a".into(), b"PK\x03\x04one".to_vec());
        let b = FunctionPackage::from_bytes(Function::Alert, "b".into(), b"PK\x03\x04one".to_vec());
        let c = FunctionPackage::from_bytes(Function::Alert, "c".into(), b"PK\x03\x04two".to_vec());
        assert_eq!(a.key, b.key, "same bytes, same key, wherever the file is");
        assert_ne!(a.key, c.key);
        assert!(
            crate::config::aws::ZipKey::try_from(a.key.clone()).is_ok(),
            "{}",
            a.key
        );
    }

    #[test]
    fn a_zip_for_another_processor_is_not_deployed() {
        let dir = tempfile::tempdir().expect("dir");
        let exe = std::fs::read(std::env::current_exe().expect("exe")).expect("read");
        let zip = zip_of("bootstrap", &exe);
        std::fs::write(dir.path().join("alert.zip"), &zip).expect("write");
        let here = this_machine().expect("a Lambda processor");
        let other = match here {
            Architecture::Arm64 => Architecture::X86_64,
            Architecture::X86_64 => Architecture::Arm64,
        };
        let ok = locate_packages(Some(dir.path()), &[Function::Alert], here, false)
            .expect("built for the configured processor");
        assert_eq!(ok.len(), 1);
        let err = locate_packages(Some(dir.path()), &[Function::Alert], other, false)
            .expect_err("built for another processor")
            .to_string();
        assert!(
            err.contains("alert.zip") && err.contains(other.as_lambda()),
            "{err}"
        );
    }

    #[test]
    fn missing_zips_say_how_to_build_them() {
        let dir = tempfile::tempdir().expect("dir");
        let bootstrap = zip_of("bootstrap", b"#!/bin/sh\n");
        std::fs::write(dir.path().join("alert.zip"), bootstrap).expect("write");
        let err = locate_packages(Some(dir.path()), &Function::ALL, Architecture::Arm64, true)
            .expect_err("scan.zip is missing")
            .to_string();
        assert!(
            err.contains("scan.zip") && err.contains("make package"),
            "{err}"
        );
        assert!(
            !err.contains("alert function:"),
            "only the missing one is named: {err}"
        );
        std::fs::write(dir.path().join("scan.zip"), b"not a zip").expect("write");
        let err = locate_packages(Some(dir.path()), &Function::ALL, Architecture::Arm64, true)
            .expect_err("not a zip")
            .to_string();
        assert!(err.contains("not a zip"), "{err}");
    }
}
