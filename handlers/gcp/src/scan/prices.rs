//! The shipped storage price table (`prices.yaml`): what an unattached disk or an old
//! snapshot costs a month, so the report can rank the savings.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PriceTable {
    reference_region: String,
    disk_gb_month: BTreeMap<String, BTreeMap<String, f64>>,
    snapshot_gb_month: BTreeMap<String, f64>,
}

static PRICES: LazyLock<PriceTable> = LazyLock::new(|| {
    // The table is ours and embedded; a unit test parses it, so this cannot fail at run time.
    serde_norway::from_str(include_str!("prices.yaml")).unwrap_or_else(|e| {
        tracing::error!(error = %e, "the shipped GCP price table does not parse");
        PriceTable {
            reference_region: String::new(),
            disk_gb_month: BTreeMap::new(),
            snapshot_gb_month: BTreeMap::new(),
        }
    })
});

/// A disk type Google does not list here is priced as the cheapest, so a saving is never
/// overstated.
const FALLBACK_DISK_TYPE: &str = "pd-standard";

/// One GB-month of a persistent disk of `disk_type` (`pd-balanced`) in `region`.
pub(crate) fn disk_gb_month(region: &str, disk_type: &str) -> f64 {
    let table = PRICES
        .disk_gb_month
        .get(region)
        .or_else(|| PRICES.disk_gb_month.get(&PRICES.reference_region));
    table
        .and_then(|t| t.get(disk_type).or_else(|| t.get(FALLBACK_DISK_TYPE)))
        .copied()
        .unwrap_or_default()
}

/// One GB-month of a standard snapshot stored in `region`.
pub(crate) fn snapshot_gb_month(region: &str) -> f64 {
    PRICES
        .snapshot_gb_month
        .get(region)
        .or_else(|| PRICES.snapshot_gb_month.get(&PRICES.reference_region))
        .copied()
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_table_parses_and_other_regions_fall_back_to_the_reference() {
        let table: PriceTable =
            serde_norway::from_str(include_str!("prices.yaml")).expect("parses");
        assert!(table.disk_gb_month.contains_key(&table.reference_region));
        assert_eq!(disk_gb_month("us-central1", "pd-ssd"), 0.17);
        assert_eq!(disk_gb_month("europe-west3", "pd-balanced"), 0.10);
        assert_eq!(disk_gb_month("europe-west3", "pd-new-kind"), 0.04);
        assert_eq!(snapshot_gb_month("asia-east1"), 0.05);
    }
}
