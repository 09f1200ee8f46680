//! Reading the id of the resource to fix from a `UnifiedEvent`: the normalizers put it in
//! different places per source (an ARN in `resource.id`, a `group_id` in the metadata, an
//! alarm's `InstanceId` dimension, a Config item's name in `resource.name`).

use std::borrow::Cow;

use escher_core::approvals::Action;
use escher_core::remediate::{FixDescription, RemediationError, RemediationRequest};
use escher_core::UnifiedEvent;

use crate::calls::CallLog;
use crate::clients::AwsClients;

/// Reads the id of the resource a fix acts on from its event.
pub(crate) type IdOf = fn(&UnifiedEvent, Action) -> Result<String, RemediationError>;

/// What every call of a fix starts from: the resource's id, once its type is checked, and
/// the clients bound to the event's region.
pub(crate) struct Target<'a> {
    pub(crate) id: String,
    pub(crate) clients: Cow<'a, AwsClients>,
}

impl<'a> Target<'a> {
    pub(crate) fn of(
        request: &RemediationRequest<'_>,
        fix: &FixDescription,
        clients: &'a AwsClients,
        id_of: IdOf,
    ) -> Result<Self, RemediationError> {
        let event = request.event;
        // The registry guarantees the type; a direct caller (a test, say) may not.
        if !fix.resource_types.contains(&event.resource.kind.as_str()) {
            return Err(RemediationError::InvalidEvent {
                action: fix.action,
                event_id: event.event_id.clone(),
                problem: format!(
                    "the resource is a {}, this fix handles {}",
                    event.resource.kind,
                    fix.resource_types.join(", ")
                ),
            });
        }
        Ok(Target {
            id: id_of(event, fix.action)?,
            clients: clients.in_region(&event.region),
        })
    }

    /// A call log metered like the clients.
    pub(crate) fn log(&self) -> CallLog {
        CallLog::metered(self.clients.meter())
    }
}

/// The part of an ARN (or bare id) after `<kind>/`, e.g. `instance/i-0abc` → `i-0abc`.
fn after_kind<'a>(id: &'a str, kind: &str) -> Option<&'a str> {
    let marker = format!(":{kind}/");
    id.find(&marker)
        .map(|at| &id[at + marker.len()..])
        .filter(|rest| !rest.is_empty() && !rest.contains('/'))
}

/// A text field of the event's resource metadata, empty when absent.
pub(crate) fn metadata_str<'a>(event: &'a UnifiedEvent, key: &str) -> &'a str {
    metadata_text(event, key).unwrap_or_default()
}

fn metadata_text<'a>(event: &'a UnifiedEvent, key: &str) -> Option<&'a str> {
    event
        .resource
        .metadata
        .get(key)
        .and_then(|v| v.as_str())
        .filter(|s| !s.is_empty())
}

fn missing(event: &UnifiedEvent, action: Action, what: &str) -> RemediationError {
    RemediationError::InvalidEvent {
        action,
        event_id: event.event_id.clone(),
        problem: format!(
            "the event names no {what} (resource id `{}`, name `{}`); fix the alert's source or act by hand",
            event.resource.id, event.resource.name
        ),
    }
}

pub(crate) fn bucket_name(
    event: &UnifiedEvent,
    action: Action,
) -> Result<String, RemediationError> {
    let from_arn = event
        .resource
        .id
        .strip_prefix("arn:")
        .and_then(|rest| rest.split_once(":s3:::"))
        .map(|(_, name)| name)
        .filter(|name| !name.is_empty() && !name.contains('/'));
    from_arn
        .or(Some(event.resource.name.as_str()).filter(|n| !n.is_empty()))
        .map(str::to_string)
        .ok_or_else(|| missing(event, action, "bucket"))
}

pub(crate) fn security_group_id(
    event: &UnifiedEvent,
    action: Action,
) -> Result<String, RemediationError> {
    metadata_text(event, "group_id")
        .or_else(|| after_kind(&event.resource.id, "security-group"))
        .or_else(|| {
            [event.resource.id.as_str(), event.resource.name.as_str()]
                .into_iter()
                .find(|s| s.starts_with("sg-"))
        })
        .map(str::to_string)
        .ok_or_else(|| missing(event, action, "security group id"))
}

pub(crate) fn instance_id(
    event: &UnifiedEvent,
    action: Action,
) -> Result<String, RemediationError> {
    let from_dimension = event
        .resource
        .metadata
        .get("dimensions")
        .and_then(|d| d.get("InstanceId"))
        .and_then(|v| v.as_str())
        .filter(|s| s.starts_with("i-"));
    after_kind(&event.resource.id, "instance")
        .or(from_dimension)
        .or_else(|| {
            [event.resource.id.as_str(), event.resource.name.as_str()]
                .into_iter()
                .find(|s| s.starts_with("i-"))
        })
        .map(str::to_string)
        .ok_or_else(|| missing(event, action, "instance id"))
}

pub(crate) fn volume_id(event: &UnifiedEvent, action: Action) -> Result<String, RemediationError> {
    after_kind(&event.resource.id, "volume")
        .or_else(|| {
            [event.resource.id.as_str(), event.resource.name.as_str()]
                .into_iter()
                .find(|s| s.starts_with("vol-"))
        })
        .map(str::to_string)
        .ok_or_else(|| missing(event, action, "volume id"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_come_from_arns() {
        assert_eq!(
            after_kind(
                "arn:aws:ec2:eu-west-1:210987654321:instance/i-0abc",
                "instance"
            ),
            Some("i-0abc")
        );
        assert_eq!(
            after_kind("arn:aws:ec2:eu-west-1:1:instance/", "instance"),
            None
        );
        assert_eq!(
            after_kind("arn:aws:ec2:eu-west-1:1:volume/vol-1", "instance"),
            None
        );
    }
}
