//! `[azure]`: what only an Azure deployment has. Who is notified and how long audit records
//! stay locked are shared with every cloud (`[notifications.*]`, `[audit]`), so one
//! escher.toml tells AWS and Azure the same thing; this section holds only where the
//! deployment goes.

use serde::{Deserialize, Serialize};

use super::checked::checked_string;

/// `[azure]`: where the Azure deployment goes.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AzureConfig {
    /// The subscription to deploy into (its id); absent: the Azure CLI's current one, chosen
    /// when deploying (`render` does not need it: the template works in any subscription).
    pub subscription: Option<SubscriptionId>,
    /// Region of the resource group and of every regional resource. Default `westeurope`.
    pub location: AzureLocation,
    /// Resource group holding everything Escher creates. Default `escher`.
    pub resource_group: ResourceGroupName,
    /// Spread the function plan across availability zones. Default true; set false in a
    /// region without availability zones (Azure refuses the plan there).
    pub zone_redundant: ZoneRedundant,
    /// Public IPv4 addresses or CIDR ranges of the machines that run escher-provision: the
    /// storage and Key Vault firewalls let them in (for `credentials --on azure`). Default
    /// none: only the function's subnet and Azure's trusted services pass.
    pub operator_addresses: Vec<OperatorAddress>,
}

/// Whether the Flex Consumption plan is zone-redundant; default true.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(transparent)]
pub struct ZoneRedundant(pub bool);

impl Default for ZoneRedundant {
    fn default() -> Self {
        ZoneRedundant(true)
    }
}

checked_string!(
    /// A subscription id: a GUID (`00000000-0000-0000-0000-000000000000`).
    SubscriptionId,
    |s| {
        let groups: Vec<&str> = s.split('-').collect();
        let lengths = [8, 4, 4, 4, 12];
        let ok = groups.len() == lengths.len()
            && groups
                .iter()
                .zip(lengths)
                .all(|(g, n)| g.len() == n && g.chars().all(|c| c.is_ascii_hexdigit()));
        if ok {
            Ok(())
        } else {
            Err(format!(
                "subscription `{s}`: use the subscription id, a GUID such as `00000000-0000-0000-0000-000000000000` (`az account show --query id`)"
            ))
        }
    }
);

checked_string!(
    /// An Azure region name as ARM spells it: lowercase letters and digits (`westeurope`).
    AzureLocation,
    |s| {
        let ok = (2..=40).contains(&s.len())
            && s.starts_with(|c: char| c.is_ascii_lowercase())
            && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        if ok {
            Ok(())
        } else {
            Err(format!(
                "location `{s}`: use the region's name as Azure spells it, lowercase with no spaces (e.g. `westeurope`, `eastus2`; `az account list-locations --query [].name`)"
            ))
        }
    }
);

/// `westeurope`: Flex Consumption and availability zones are both offered there, so the
/// default plan (zone-redundant) deploys as rendered.
impl Default for AzureLocation {
    fn default() -> Self {
        AzureLocation("westeurope".into())
    }
}

checked_string!(
    /// A resource group name: 1 to 90 letters, digits, `-`, `_`, `.`, `(`, `)`, not ending in `.`.
    ResourceGroupName,
    |s| {
        let ok = (1..=90).contains(&s.len())
            && !s.ends_with('.')
            && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_.()".contains(c));
        if ok {
            Ok(())
        } else {
            Err(format!(
                "resource_group `{s}`: use 1 to 90 letters, digits, `-`, `_`, `.`, `(` or `)`, not ending in `.` (e.g. `escher`)"
            ))
        }
    }
);

impl Default for ResourceGroupName {
    fn default() -> Self {
        ResourceGroupName("escher".into())
    }
}

checked_string!(
    /// A public IPv4 address or CIDR range (`203.0.113.7`, `203.0.113.0/24`), as the storage
    /// and Key Vault firewalls take them.
    OperatorAddress,
    |s| {
        let (address, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let prefix_ok = prefix.is_none_or(|p| p.parse::<u8>().is_ok_and(|n| n <= 30));
        match address.parse::<std::net::Ipv4Addr>() {
            Ok(ip) if prefix_ok && !ip.is_private() && !ip.is_loopback() => Ok(()),
            Ok(_) if prefix_ok => Err(format!(
                "operator_addresses `{s}`: a private or loopback address; the firewalls take public IPv4 addresses (your machine's as the internet sees it)"
            )),
            _ => Err(format!(
                "operator_addresses `{s}`: use a public IPv4 address or a CIDR range up to /30 (e.g. `203.0.113.7` or `203.0.113.0/24`)"
            )),
        }
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<AzureConfig, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_deploy_to_westeurope_in_group_escher() {
        let config = parse("").expect("empty");
        assert_eq!(config.location.as_str(), "westeurope");
        assert_eq!(config.resource_group.as_str(), "escher");
        assert_eq!(config.subscription, None);
        assert!(config.zone_redundant.0);
    }

    #[test]
    fn bad_values_say_what_is_accepted() {
        let err = parse("location = \"West Europe\"\n").expect_err("spaces");
        assert!(err.contains("westeurope"), "{err}");
        let err = parse("subscription = \"my-sub\"\n").expect_err("not a guid");
        assert!(err.contains("az account show"), "{err}");
        let err = parse("resource_group = \"a/b\"\n").expect_err("slash");
        assert!(err.contains("resource_group"), "{err}");
        let err = parse("region = \"westeurope\"\n").expect_err("unknown key");
        assert!(err.contains("location"), "names the accepted keys: {err}");
        assert!(parse("subscription = \"0a1b2c3d-0000-4000-8000-00000000abcd\"\n").is_ok());
        assert!(parse("operator_addresses = [\"203.0.113.7\", \"198.51.100.0/24\"]\n").is_ok());
        let err = parse("operator_addresses = [\"10.0.0.1\"]\n").expect_err("private");
        assert!(err.contains("public IPv4"), "{err}");
        let err = parse("operator_addresses = [\"203.0.113.0/31\"]\n").expect_err("too narrow");
        assert!(err.contains("/30"), "{err}");
    }
}
