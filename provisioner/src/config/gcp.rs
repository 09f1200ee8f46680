//! `[gcp]`: what only a Google Cloud deployment has. Who is notified and how long audit
//! records stay locked are shared with every cloud (`[notifications.*]`, `[audit]`); this
//! section holds where the deployment goes and the choices only Google Cloud offers.

use serde::{Deserialize, Serialize};

use super::checked::checked_string;

/// `[gcp]`: where the Google Cloud deployment goes.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct GcpConfig {
    /// The project to deploy into (its id). Absent: `render` leaves it to the Terraform
    /// variable `project`, and the bucket names are derived from it at deployment.
    pub project: Option<ProjectId>,
    /// Region of the Cloud Run service, the buckets and the scheduler job. Default
    /// `europe-west1`.
    pub region: GcpRegion,
    /// The organization's numeric id: with it, Security Command Center findings of the whole
    /// organization reach the handler (an SCC notification config needs an organization).
    pub organization: Option<OrganizationId>,
    /// Lock the audit bucket's retention policy. Irreversible: once locked, neither the
    /// retention period can be shortened nor the bucket deleted before its objects expire,
    /// by anyone. Default false (the policy is enforced but can still be removed).
    pub lock_audit_retention: bool,
    /// Bucket names; absent: derived from the project (`<project>-escher-state`, ...).
    pub buckets: GcpBuckets,
}

/// `[gcp.buckets]`: Cloud Storage bucket names are global, so each can be chosen.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct GcpBuckets {
    /// State, approvals and morning reports.
    pub state: Option<GcsBucketName>,
    /// Audit records, under the retention policy.
    pub audit: Option<GcsBucketName>,
    /// The other two buckets' access logs.
    pub access_logs: Option<GcsBucketName>,
}

checked_string!(
    /// A project id: 6 to 30 lowercase letters, digits and hyphens, starting with a letter
    /// and not ending with a hyphen (`acme-prod-1234`).
    ProjectId,
    |s| {
        let ok = (6..=30).contains(&s.len())
            && s.starts_with(|c: char| c.is_ascii_lowercase())
            && !s.ends_with('-')
            && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if ok {
            Ok(())
        } else {
            Err(format!(
                "project `{s}`: use the project id (not its name or number): 6 to 30 lowercase letters, digits and hyphens, starting with a letter (`gcloud projects list`)"
            ))
        }
    }
);

checked_string!(
    /// A Google Cloud region (`europe-west1`, `us-central1`, `northamerica-northeast2`).
    GcpRegion,
    |s| {
        let ok = s.split_once('-').is_some_and(|(area, rest)| {
            !area.is_empty()
                && area.chars().all(|c| c.is_ascii_lowercase())
                && rest.ends_with(|c: char| c.is_ascii_digit())
                && rest.starts_with(|c: char| c.is_ascii_lowercase())
                && rest.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        }) && s.len() <= 40;
        if ok {
            Ok(())
        } else {
            Err(format!(
                "region `{s}`: use a region name such as `europe-west1` or `us-central1`, not a zone (`gcloud run regions list`)"
            ))
        }
    }
);

/// `europe-west1`: Cloud Run, Cloud Scheduler and Secret Manager are all offered there.
impl Default for GcpRegion {
    fn default() -> Self {
        GcpRegion("europe-west1".into())
    }
}

checked_string!(
    /// An organization's numeric id (`123456789012`).
    OrganizationId,
    |s| {
        let ok = (1..=20).contains(&s.len())
            && s.chars().all(|c| c.is_ascii_digit())
            && !s.starts_with('0');
        if ok {
            Ok(())
        } else {
            Err(format!(
                "organization `{s}`: use the organization's numeric id, e.g. `123456789012` (`gcloud organizations list`), not its domain"
            ))
        }
    }
);

checked_string!(
    /// A Cloud Storage bucket name: 3 to 63 lowercase letters, digits, `-`, `_` and `.`,
    /// starting and ending with a letter or digit, not starting with `goog`.
    GcsBucketName,
    |s| {
        let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
        let ok = (3..=63).contains(&s.len())
            && s.starts_with(alnum)
            && s.ends_with(alnum)
            && !s.starts_with("goog")
            && !s.contains("google")
            && s.chars().all(|c| alnum(c) || "-_.".contains(c));
        if ok {
            Ok(())
        } else {
            Err(format!(
                "bucket `{s}`: use 3 to 63 lowercase letters, digits, `-`, `_` or `.`, starting and ending with a letter or digit, without `goog` (e.g. `acme-escher-state`)"
            ))
        }
    }
);

/// The three buckets' names, chosen or derived from the project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcpBucketNames {
    pub state: String,
    pub audit: String,
    pub access_logs: String,
}

impl GcpConfig {
    /// The buckets' names: as escher.toml names them, else `<project>-escher-<role>` with
    /// `project` (a project id, or the expression a template writes for it).
    pub fn bucket_names(&self, project: &str) -> GcpBucketNames {
        let name = |chosen: &Option<GcsBucketName>, role: &str| {
            chosen
                .as_ref()
                .map(|b| b.as_str().to_string())
                .unwrap_or_else(|| format!("{project}-escher-{role}"))
        };
        GcpBucketNames {
            state: name(&self.buckets.state, "state"),
            audit: name(&self.buckets.audit, "audit"),
            access_logs: name(&self.buckets.access_logs, "access-logs"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<GcpConfig, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_deploy_to_europe_west1_without_locking_the_audit_bucket() {
        let config = parse("").expect("empty");
        assert_eq!(config.region.as_str(), "europe-west1");
        assert_eq!(config.project, None);
        assert_eq!(config.organization, None);
        assert!(
            !config.lock_audit_retention,
            "locking is irreversible: opt-in only"
        );
        assert_eq!(
            config.bucket_names("acme-prod"),
            GcpBucketNames {
                state: "acme-prod-escher-state".into(),
                audit: "acme-prod-escher-audit".into(),
                access_logs: "acme-prod-escher-access-logs".into(),
            }
        );
    }

    #[test]
    fn chosen_bucket_names_win_over_the_derived_ones() {
        let config = parse("project = \"acme-prod\"\n[buckets]\naudit = \"acme-audit-trail\"\n")
            .expect("config");
        let names = config.bucket_names("acme-prod");
        assert_eq!(names.audit, "acme-audit-trail");
        assert_eq!(names.state, "acme-prod-escher-state");
    }

    #[test]
    fn good_values_are_accepted() {
        let config = parse(
            "project = \"acme-prod-1234\"\nregion = \"northamerica-northeast2\"\norganization = \"123456789012\"\nlock_audit_retention = true\n",
        )
        .expect("config");
        assert_eq!(
            config.project.map(String::from).as_deref(),
            Some("acme-prod-1234")
        );
        assert_eq!(config.region.as_str(), "northamerica-northeast2");
        assert!(config.lock_audit_retention);
    }

    #[test]
    fn bad_values_say_what_is_accepted() {
        for (text, says) in [
            ("project = \"Acme Prod\"\n", "gcloud projects list"),
            ("project = \"12345678901\"\n", "not its name or number"),
            ("project = \"acme\"\n", "6 to 30"),
            ("region = \"europe-west1-b\"\n", "not a zone"),
            ("region = \"Europe West\"\n", "europe-west1"),
            ("organization = \"example.com\"\n", "numeric id"),
            ("[buckets]\nstate = \"Acme_State\"\n", "lowercase"),
            ("[buckets]\naudit = \"google-audit\"\n", "goog"),
            ("lock_audit_retention = \"yes\"\n", "boolean"),
            ("location = \"europe-west1\"\n", "region"),
            ("[buckets]\nlogs = \"a-logs\"\n", "access_logs"),
        ] {
            let err = parse(text).expect_err(text);
            assert!(err.contains(says), "{text}: {err}");
        }
    }
}
