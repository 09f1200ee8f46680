//! Google Cloud resource names as events carry them: relative
//! (`projects/p/zones/z/instances/i`), full (`//compute.googleapis.com/projects/…`, as
//! Security Command Center and Cloud Asset Inventory write them) or a URL (`selfLink`).

/// The name with any service or URL prefix taken off: `projects/…` or `b/…`.
pub fn relative(name: &str) -> &str {
    let name = name.trim();
    let name = name
        .strip_prefix("https://")
        .or_else(|| name.strip_prefix("//"))
        .map(|rest| {
            // Past the host and any API version path (`…/compute/v1/`): from `projects/`.
            rest.find("projects/").map(|i| &rest[i..]).unwrap_or(rest)
        })
        .unwrap_or(name);
    name.trim_matches('/')
}

/// The segment after `collection` (`projects`, `zones`, `buckets`, …), when the name has one.
pub fn value_after<'a>(name: &'a str, collection: &str) -> Option<&'a str> {
    let mut segments = name.split('/');
    while let Some(segment) = segments.next() {
        if segment == collection {
            return segments.next().filter(|v| !v.is_empty());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_of_a_name_reads_the_same() {
        for id in [
            "projects/shop/zones/europe-west3-b/instances/db-1",
            "//compute.googleapis.com/projects/shop/zones/europe-west3-b/instances/db-1",
            "https://www.googleapis.com/compute/v1/projects/shop/zones/europe-west3-b/instances/db-1",
        ] {
            let name = relative(id);
            assert_eq!(name, "projects/shop/zones/europe-west3-b/instances/db-1", "{id}");
            assert_eq!(value_after(name, "zones"), Some("europe-west3-b"));
            assert_eq!(value_after(name, "instances"), Some("db-1"));
        }
        assert_eq!(value_after("projects/_/buckets/", "buckets"), None);
    }
}
