//! Rendering deployment templates: configuration and inputs in, file contents out.
//!
//! Rendering is pure (no file system, no network), so the same code serves `render`, the
//! golden tests and `extend`; [`write_files`] is the only part that touches the disk.
//! Templates are embedded in the binary, because a deployed CLI has no repository beside it.

pub mod aws;
pub mod azure;
pub mod gcp;

use std::path::{Path, PathBuf};

use handlebars::Handlebars;

use crate::cloud::Cloud;
use crate::config::{EscherConfig, TimeZoneName};

/// Renders a cloud's files from the configuration and the scan's time zone.
pub type Renderer = fn(&EscherConfig, TimeZoneName) -> Result<Rendering, RenderError>;

/// The one place `render` chooses a cloud's renderer (Google Cloud's default format; `render
/// --format` picks the other through [`gcp::for_review_as`]).
pub fn for_cloud(cloud: Cloud) -> Renderer {
    match cloud {
        Cloud::Aws => aws::for_review,
        Cloud::Azure => azure::for_review,
        Cloud::Gcp => gcp::for_review,
    }
}

/// A cloud's rendering as `render` writes and reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendering {
    pub files: Vec<RenderedFile>,
    /// The names, among `files`, of the template and of its parameters (empty when the
    /// format takes no parameters file: Deployment Manager YAML).
    pub template_file: &'static str,
    pub parameters_file: &'static str,
    /// Where it deploys, when escher.toml says.
    pub region: Option<String>,
    /// Template parameters without a value yet (filled by `extend` after packaging).
    pub missing_parameters: Vec<&'static str>,
    /// How many permissions the remediations were granted.
    pub remediation_permissions: usize,
    /// AWS: whether the stack creates its own CloudTrail trail.
    pub create_trail: Option<bool>,
    /// Decisions taken without asking the cloud, for stderr.
    pub notices: Vec<String>,
    /// The cloud's own lines of the summary, after the shared ones.
    pub details: Vec<String>,
}

/// Why a template could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// A bundled template does not parse: a bug in this build of the CLI.
    #[error("bundled template {name} is broken (please report this): {source}")]
    Template {
        name: &'static str,
        #[source]
        source: Box<handlebars::TemplateError>,
    },
    /// A value the template needs is missing (strict mode) or a helper failed.
    #[error("rendering {name} failed: {source}")]
    Render {
        name: &'static str,
        #[source]
        source: Box<handlebars::RenderError>,
    },
    /// A remediation asks for a permission that cannot be granted safely.
    #[error("required permission `{action}` on `{resource}` cannot be granted: {problem}")]
    Permission {
        action: String,
        resource: String,
        problem: String,
    },
}

/// One output file of a rendering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedFile {
    /// The file name inside the output folder.
    pub name: &'static str,
    pub contents: String,
}

/// A Handlebars registry in strict mode (a missing value fails instead of rendering as an
/// empty string, which would give a template that deploys something else than intended).
///
/// The escape function writes every `{{value}}` as a JSON string literal, which is also a
/// valid double-quoted YAML scalar; checked values (numbers, logical ids) use `{{{value}}}`.
/// `{{{json value}}}` writes any value as JSON (a YAML flow collection).
pub(crate) fn registry() -> Handlebars<'static> {
    let mut hb = Handlebars::new();
    hb.set_strict_mode(true);
    hb.register_escape_fn(|s| serde_json::Value::from(s).to_string());
    hb.register_helper("json", Box::new(json_helper));
    hb
}

fn json_helper(
    h: &handlebars::Helper<'_>,
    _: &Handlebars<'_>,
    _: &handlebars::Context,
    _: &mut handlebars::RenderContext<'_, '_>,
    out: &mut dyn handlebars::Output,
) -> handlebars::HelperResult {
    let value = h
        .param(0)
        .ok_or_else(|| handlebars::RenderErrorReason::ParamNotFoundForIndex("json", 0))?;
    out.write(&value.value().to_string())?;
    Ok(())
}

/// Writes the rendered files into `dir` (created if needed) and returns their paths.
pub fn write_files(dir: &Path, files: &[RenderedFile]) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    files
        .iter()
        .map(|file| {
            let path = dir.join(file.name);
            std::fs::write(&path, &file.contents)?;
            Ok(path)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_mode_rejects_a_missing_value() {
        let mut hb = registry();
        hb.register_template_string("t", "Timezone: {{timezone}}")
            .expect("template");
        let err = hb
            .render("t", &serde_json::json!({"scan_time": "02:00"}))
            .expect_err("missing variable must fail");
        assert!(err.to_string().contains("timezone"), "{err}");
        let ok = hb
            .render("t", &serde_json::json!({"timezone": "Europe/Berlin"}))
            .expect("present variable");
        assert_eq!(ok, r#"Timezone: "Europe/Berlin""#);
    }

    #[test]
    fn values_are_quoted_so_user_text_cannot_change_the_yaml() {
        let mut hb = registry();
        hb.register_template_string("t", "Endpoint: {{endpoint}}")
            .expect("template");
        let out = hb
            .render(
                "t",
                &serde_json::json!({"endpoint": "a@b.c\nEvil: !Ref X # \"q\""}),
            )
            .expect("render");
        assert_eq!(out, r#"Endpoint: "a@b.c\nEvil: !Ref X # \"q\"""#);
    }
}
