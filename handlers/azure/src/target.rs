//! Which Azure resource a fix acts on, read from the event: the Resource Manager id of the
//! resource (or of one of its children: a container names its storage account, a rule its
//! network security group).

use escher_core::remediate::{RemediationError, RemediationRequest};

use crate::ids;

/// The id of the event's resource, cut after `<type_segment>/<name>`.
pub(crate) fn arm_target(
    request: &RemediationRequest<'_>,
    type_segment: &str,
) -> Result<String, RemediationError> {
    let id = &request.event.resource.id;
    ids::through(id, type_segment)
        .filter(|_| ids::is_arm_id(id))
        .ok_or_else(|| RemediationError::InvalidEvent {
            action: request.action,
            event_id: request.event.event_id.clone(),
            problem: format!(
                "the resource id {id:?} is not a Resource Manager id of a {type_segment} resource (/subscriptions/…/providers/…/{type_segment}/NAME)"
            ),
        })
}
