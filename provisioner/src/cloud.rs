//! The clouds Escher deploys into, as `--cloud` names them, and the one wording for what
//! this version cannot do for a cloud yet.

use std::fmt;

use clap::ValueEnum;
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Cloud {
    Aws,
    Azure,
    Gcp,
}

impl Cloud {
    /// As `--cloud` spells it (and the saved outputs' file names).
    pub fn as_str(self) -> &'static str {
        match self {
            Cloud::Aws => "aws",
            Cloud::Azure => "azure",
            Cloud::Gcp => "gcp",
        }
    }

    /// As people write it.
    pub fn display_name(self) -> &'static str {
        match self {
            Cloud::Aws => "AWS",
            Cloud::Azure => "Azure",
            Cloud::Gcp => "GCP",
        }
    }
}

impl fmt::Display for Cloud {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why `package` builds nothing for a cloud.
#[derive(Debug, thiserror::Error)]
pub enum NoPackage {
    #[error("--cloud {0} has no package to build: `escher-provision extend --cloud {0}` builds the handler and makes its container image itself")]
    BuiltByExtend(Cloud),
}
