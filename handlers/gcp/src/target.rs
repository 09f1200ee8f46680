//! Which Google Cloud resource a fix acts on, read from the event's resource name.

use escher_core::remediate::{RemediationError, RemediationRequest};

use crate::ids;

fn invalid(request: &RemediationRequest<'_>, shape: &str) -> RemediationError {
    RemediationError::InvalidEvent {
        action: request.action,
        event_id: request.event.event_id.clone(),
        problem: format!(
            "the resource name {:?} is not a Google Cloud name of the form {shape}",
            request.event.resource.id
        ),
    }
}

/// A bucket's name: from `projects/_/buckets/NAME`, or a bare bucket name.
pub(crate) fn bucket(request: &RemediationRequest<'_>) -> Result<String, RemediationError> {
    let id = ids::relative(&request.event.resource.id);
    let name = match ids::value_after(id, "buckets") {
        Some(name) => name,
        None if !id.is_empty() && !id.contains('/') => id,
        None => return Err(invalid(request, "projects/_/buckets/NAME")),
    };
    Ok(name.to_string())
}

/// A project-wide resource (a firewall rule).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Global {
    pub project: String,
    pub name: String,
}

impl Global {
    pub fn path(&self, collection: &str) -> String {
        format!(
            "projects/{}/global/{collection}/{}",
            self.project, self.name
        )
    }
}

pub(crate) fn global(
    request: &RemediationRequest<'_>,
    collection: &str,
) -> Result<Global, RemediationError> {
    let id = ids::relative(&request.event.resource.id);
    let shape = || format!("projects/PROJECT/global/{collection}/NAME");
    let name = ids::value_after(id, collection).ok_or_else(|| invalid(request, &shape()))?;
    let project = ids::value_after(id, "projects")
        .or(Some(request.event.account_id.as_str()).filter(|p| !p.is_empty()))
        .ok_or_else(|| invalid(request, &shape()))?;
    Ok(Global {
        project: project.to_string(),
        name: name.to_string(),
    })
}

/// A resource in one zone (an instance, a disk).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Zonal {
    pub project: String,
    pub zone: String,
    pub name: String,
}

impl Zonal {
    pub fn path(&self, collection: &str) -> String {
        format!(
            "projects/{}/zones/{}/{collection}/{}",
            self.project, self.zone, self.name
        )
    }
}

pub(crate) fn zonal(
    request: &RemediationRequest<'_>,
    collection: &str,
) -> Result<Zonal, RemediationError> {
    let id = ids::relative(&request.event.resource.id);
    let shape = || format!("projects/PROJECT/zones/ZONE/{collection}/NAME");
    let part = |c: &str| ids::value_after(id, c).ok_or_else(|| invalid(request, &shape()));
    Ok(Zonal {
        project: part("projects")?.to_string(),
        zone: part("zones")?.to_string(),
        name: part(collection)?.to_string(),
    })
}
