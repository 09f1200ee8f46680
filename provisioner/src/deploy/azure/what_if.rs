//! Resource Manager's what-if answer, and the template itself when the resource group does
//! not exist yet, as the change table every cloud prints. Pure: plain JSON in, rows out.

use serde_json::Value;

use crate::deploy::seam::{ChangeKind, Replacement, ResourceChange};

/// The rows of a what-if result (`properties.changes[]`). Resources that stay as they are
/// (`NoChange`, `Ignore`) are left out, so an empty list means nothing would change.
pub fn changes(result: &Value) -> Vec<ResourceChange> {
    let list = result["properties"]["changes"]
        .as_array()
        .or_else(|| result["changes"].as_array());
    let mut rows: Vec<ResourceChange> = list
        .into_iter()
        .flatten()
        .filter_map(|change| {
            let action = match change["changeType"].as_str().unwrap_or_default() {
                "Create" => ChangeKind::Add,
                "Modify" => ChangeKind::Modify,
                "Delete" => ChangeKind::Remove,
                "NoChange" | "Ignore" => return None,
                // Deploy: redeployed, what changes is unknown; Unsupported: what-if cannot
                // tell (a nested template's resources, for one).
                _ => ChangeKind::Other,
            };
            let id = change["resourceId"].as_str().unwrap_or_default();
            let (resource_type, name) = type_and_name(id);
            Some(ResourceChange {
                action,
                logical_id: name,
                resource_type,
                // Resource Manager updates a resource in place; what-if names no replacement.
                replacement: Replacement::No,
            })
        })
        .collect();
    rows.sort_by(|a, b| {
        (a.resource_type.as_str(), a.logical_id.as_str())
            .cmp(&(b.resource_type.as_str(), b.logical_id.as_str()))
    });
    rows
}

/// Every resource of the template as created, for a resource group that does not exist
/// yet (what-if needs the group): named by its symbol, since the names are expressions
/// Resource Manager evaluates.
pub fn all_created(group: &str, template: &Value) -> Vec<ResourceChange> {
    let mut rows = vec![ResourceChange {
        action: ChangeKind::Add,
        logical_id: group.to_string(),
        resource_type: "Microsoft.Resources/resourceGroups".into(),
        replacement: Replacement::No,
    }];
    for resource in template["resources"].as_array().into_iter().flatten() {
        // Left out by a condition that is off in the first deployment.
        if resource["condition"]
            .as_str()
            .is_some_and(|c| c.contains("createEventSubscriptions"))
        {
            continue;
        }
        rows.push(ResourceChange {
            action: ChangeKind::Add,
            logical_id: resource["metadata"]["symbol"]
                .as_str()
                .or_else(|| resource["name"].as_str())
                .unwrap_or_default()
                .to_string(),
            resource_type: resource["type"].as_str().unwrap_or_default().to_string(),
            replacement: Replacement::No,
        });
    }
    rows
}

/// `(Microsoft.Storage/storageAccounts/blobServices, escst1/default)` from a resource id.
pub fn type_and_name(id: &str) -> (String, String) {
    let Some((_, after)) = id.rsplit_once("/providers/") else {
        // A resource group or subscription itself.
        let parts: Vec<&str> = id.trim_matches('/').split('/').collect();
        return match parts.as_slice() {
            [.., kind, name] => (format!("Microsoft.Resources/{kind}"), (*name).to_string()),
            _ => (String::new(), id.to_string()),
        };
    };
    let parts: Vec<&str> = after.split('/').collect();
    let (namespace, rest) = parts.split_first().unwrap_or((&"", &[]));
    let mut kinds = vec![(*namespace).to_string()];
    let mut names = Vec::new();
    for pair in rest.chunks(2) {
        kinds.push(pair[0].to_string());
        if let Some(name) = pair.get(1) {
            names.push((*name).to_string());
        }
    }
    (kinds.join("/"), names.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_resource_id_gives_its_type_and_name_children_included() {
        assert_eq!(
            type_and_name("/subscriptions/s/resourceGroups/g/providers/Microsoft.Storage/storageAccounts/escst1/blobServices/default"),
            ("Microsoft.Storage/storageAccounts/blobServices".into(), "escst1/default".into())
        );
        assert_eq!(
            type_and_name("/subscriptions/s/resourceGroups/escher"),
            ("Microsoft.Resources/resourceGroups".into(), "escher".into())
        );
    }

    #[test]
    fn unchanged_resources_are_left_out_and_the_rest_named() {
        let result = json!({"status": "Succeeded", "properties": {"changes": [
            {"resourceId": "/subscriptions/s/resourceGroups/g/providers/Microsoft.Web/sites/app", "changeType": "Modify", "delta": []},
            {"resourceId": "/subscriptions/s/resourceGroups/g/providers/Microsoft.KeyVault/vaults/v", "changeType": "NoChange"},
            {"resourceId": "/subscriptions/s/resourceGroups/g/providers/Microsoft.Insights/actionGroups/a", "changeType": "Create"},
            {"resourceId": "/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/virtualNetworks/n", "changeType": "Ignore"},
            {"resourceId": "/subscriptions/s/resourceGroups/g/providers/Microsoft.Resources/deployments/d", "changeType": "Unsupported"}
        ]}});
        let rows = changes(&result);
        let seen: Vec<(ChangeKind, &str)> = rows
            .iter()
            .map(|r| (r.action, r.logical_id.as_str()))
            .collect();
        assert_eq!(
            seen,
            [
                (ChangeKind::Add, "a"),
                (ChangeKind::Other, "d"),
                (ChangeKind::Modify, "app")
            ]
        );
        assert!(changes(&json!({"properties": {"changes": [
            {"resourceId": "/x/providers/A/b/c", "changeType": "NoChange"}
        ]}}))
        .is_empty());
    }
}
