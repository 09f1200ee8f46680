//! The storage accounts' names. Storage account names are global across Azure, so each is a
//! prefix and the resource group's `uniqueString(resourceGroup().id)`: 18 lowercase letters
//! and digits, the same on every deployment into that group. Computing the same string here
//! lets the templates carry the names themselves (a reader, and checkov, sees what will be
//! created) while a deployment made before keeps its accounts.

use serde::Serialize;

/// The state and audit accounts' names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccountNames {
    pub state: String,
    pub audit: String,
}

impl AccountNames {
    /// The names in resource group `group` of `subscription`: what the template's
    /// `concat('escst', uniqueString(resourceGroup().id))` gives there. `group` as Azure
    /// spells it (the hash tells case apart; Azure keeps the case the group was created with).
    pub fn for_group(subscription: &str, group: &str) -> Self {
        let suffix = unique_string(&[&resource_group_id(subscription, group)]);
        AccountNames {
            state: format!("escst{suffix}"),
            audit: format!("escau{suffix}"),
        }
    }
}

/// `resourceGroup().id`: Resource Manager writes subscription ids in lowercase.
pub fn resource_group_id(subscription: &str, group: &str) -> String {
    format!(
        "/subscriptions/{}/resourceGroups/{group}",
        subscription.to_ascii_lowercase()
    )
}

/// Whether `name` is a valid storage account name (3 to 24 lowercase letters and digits).
pub fn is_storage_account_name(name: &str) -> bool {
    (3..=24).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
}

/// Resource Manager's `uniqueString(parts...)`: the parts joined with `-`, hashed with its
/// 64-bit MurmurHash variant, written as 13 base-32 characters from the high bits down.
pub fn unique_string(parts: &[&str]) -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut hash = murmur_hash64(parts.join("-").as_bytes());
    let mut out = String::with_capacity(13);
    for _ in 0..13 {
        out.push(ALPHABET[(hash >> 59) as usize] as char);
        hash <<= 5;
    }
    out
}

/// The 64-bit MurmurHash (two 32-bit lanes, seed 0) behind `uniqueString`.
fn murmur_hash64(data: &[u8]) -> u64 {
    const C1: u32 = 597_399_067;
    const C2: u32 = 2_869_860_233;
    let le = |bytes: &[u8]| {
        bytes
            .iter()
            .enumerate()
            .fold(0u32, |word, (i, b)| word | u32::from(*b) << (8 * i))
    };
    let mut h1: u32 = 0;
    let mut h2: u32 = 0;
    let mut chunks = data.chunks_exact(8);
    for block in &mut chunks {
        let k1 = le(&block[..4])
            .wrapping_mul(C1)
            .rotate_left(15)
            .wrapping_mul(C2);
        h1 = (h1 ^ k1)
            .rotate_left(19)
            .wrapping_add(h2)
            .wrapping_mul(5)
            .wrapping_add(1_444_728_091);
        let k2 = le(&block[4..])
            .wrapping_mul(C2)
            .rotate_left(17)
            .wrapping_mul(C1);
        h2 = (h2 ^ k2)
            .rotate_left(13)
            .wrapping_add(h1)
            .wrapping_mul(5)
            .wrapping_add(197_830_471);
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        let (first, second) = tail.split_at(tail.len().min(4));
        h1 ^= le(first).wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
        if !second.is_empty() {
            h2 ^= le(second).wrapping_mul(C2).rotate_left(17).wrapping_mul(C1);
        }
    }
    // The length is hashed as a 32-bit value, as Resource Manager does.
    let length = data.len() as u32;
    let mut a = h1 ^ length;
    let mut b = h2 ^ length;
    a = a.wrapping_add(b);
    b = b.wrapping_add(a);
    let mix = |mut h: u32| {
        h = (h ^ (h >> 16)).wrapping_mul(0x85eb_ca6b);
        h = (h ^ (h >> 13)).wrapping_mul(0xc2b2_ae35);
        h ^ (h >> 16)
    };
    a = mix(a);
    b = mix(b);
    a = a.wrapping_add(b);
    b = b.wrapping_add(a);
    u64::from(b) << 32 | u64::from(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What Resource Manager's own `uniqueString` gives for these inputs (3 to 150 bytes:
    /// hash tails of 3, 4 and 6 bytes, and none).
    #[test]
    fn unique_string_is_resource_managers() {
        for (parts, expected) in [
            (&["test"][..], "rbgf3xv4ufgzg"),
            (&["hello", "world"][..], "a7wkljktk6wne"),
            (&["abc"][..], "cgtzqvhu4i23s"),
            (
                &["/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/my-rg"][..],
                "bmg7c6xu4tw46",
            ),
            (&["foo", "bar", "baz"][..], "xzi4ioaxtmth4"),
            (
                &["/subscriptions/31e9f9a0-9fd2-4294-a0a3-0101246d9700/resourceGroups/rg-modm201-20230913120256/providers/Microsoft.Compute/virtualMachines/bobjacmodm201"][..],
                "yvjxno3je5on2",
            ),
        ] {
            assert_eq!(unique_string(parts), expected, "{parts:?}");
        }
    }

    #[test]
    fn the_names_are_valid_storage_account_names_of_the_group() {
        let names = AccountNames::for_group("0A1B2C3D-4E5F-4A6B-8C7D-9E0F1A2B3C4D", "acme-escher");
        assert_eq!(
            names,
            AccountNames::for_group("0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d", "acme-escher"),
            "subscription ids are lowercase in resource ids"
        );
        assert!(is_storage_account_name(&names.state), "{names:?}");
        assert!(is_storage_account_name(&names.audit), "{names:?}");
        assert_eq!(names.state.len(), 18);
        assert_eq!(names.state[5..], names.audit[5..]);
        assert_ne!(
            names,
            AccountNames::for_group("0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d", "Acme-Escher"),
            "Azure's hash tells case apart"
        );
        assert!(!is_storage_account_name("stateAccount"));
        assert!(!is_storage_account_name("ab"));
    }
}
