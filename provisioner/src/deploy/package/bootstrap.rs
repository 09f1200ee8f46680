//! What a function zip must hold to start on Lambda's `provided.al2023`: a `bootstrap` at
//! its top, a `#!` script or an ELF binary for the processor the functions run on, needing
//! no glibc symbol version newer than Amazon Linux 2023's. Pure checks on bytes, so `extend`
//! applies them to any zip, built here or given.

use std::collections::BTreeSet;
use std::fmt;
use std::io::Read as _;

use object::read::elf::{FileHeader, SectionTable};
use serde::Serialize;

use crate::config::Architecture;

/// Amazon Linux 2023, the base of `provided.al2023`, ships glibc 2.34: a binary that needs
/// a newer symbol version does not start there.
pub const AL2023_GLIBC: GlibcVersion = GlibcVersion {
    major: 2,
    minor: 34,
    patch: 0,
};

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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::path::Path;
    use std::process::Command;

    use crate::deploy::package::build::this_machine;

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
}
