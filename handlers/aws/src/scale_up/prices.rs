//! The shipped price table (`prices.yaml`): what one more GiB or one more instance adds to
//! the monthly bill, so `scale_up_capacity` can hold a step to the approval's
//! `max_added_monthly_usd`.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use serde::Deserialize;

const HOURS_PER_MONTH: f64 = 730.0;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PriceTable {
    ebs_gib_month: BTreeMap<String, f64>,
    rds_gib_month: BTreeMap<String, f64>,
    ec2_large_hour: BTreeMap<String, f64>,
}

static PRICES: LazyLock<PriceTable> = LazyLock::new(|| {
    // The table is ours and embedded; a unit test parses it, so this cannot fail at run time.
    serde_norway::from_str(include_str!("prices.yaml")).unwrap_or_else(|e| {
        tracing::error!(error = %e, "the shipped price table does not parse");
        PriceTable {
            ebs_gib_month: BTreeMap::new(),
            rds_gib_month: BTreeMap::new(),
            ec2_large_hour: BTreeMap::new(),
        }
    })
});

/// One more GiB of an EBS volume of `volume_type`, per month.
pub(crate) fn ebs_gib_month(volume_type: &str) -> Option<f64> {
    PRICES.ebs_gib_month.get(volume_type).copied()
}

/// One more GiB of RDS storage of `storage_type`, per month (twice for Multi-AZ).
pub(crate) fn rds_gib_month(storage_type: &str, multi_az: bool) -> Option<f64> {
    let single = PRICES.rds_gib_month.get(storage_type).copied()?;
    Some(if multi_az { single * 2.0 } else { single })
}

/// One more instance of `instance_type` (`m5.xlarge`) running all month.
pub(crate) fn instance_month(instance_type: &str) -> Option<f64> {
    let (family, size) = instance_type.split_once('.')?;
    let large = PRICES.ec2_large_hour.get(family).copied()?;
    let factor = match size {
        "nano" => 1.0 / 16.0,
        "micro" => 1.0 / 8.0,
        "small" => 1.0 / 4.0,
        "medium" => 1.0 / 2.0,
        "large" => 1.0,
        "xlarge" => 2.0,
        other => {
            let n: f64 = other.strip_suffix("xlarge")?.parse().ok()?;
            2.0 * n
        }
    };
    Some(large * factor * HOURS_PER_MONTH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_table_parses_and_prices_common_resources() {
        let table: PriceTable = serde_norway::from_str(include_str!("prices.yaml")).unwrap();
        assert!(table.ec2_large_hour.len() >= 20);
        assert_eq!(ebs_gib_month("gp3"), Some(0.08));
        assert_eq!(rds_gib_month("gp2", true), Some(0.23));
        assert_eq!(ebs_gib_month("unknown"), None);
        let m5_2xl = instance_month("m5.2xlarge").unwrap();
        assert!((m5_2xl - 0.384 * 730.0).abs() < 1e-6, "{m5_2xl}");
        let t3_micro = instance_month("t3.micro").unwrap();
        assert!((t3_micro - 0.0104 * 730.0).abs() < 1e-6, "{t3_micro}");
        assert_eq!(instance_month("m5.metal"), None);
        assert_eq!(instance_month("x9z.large"), None);
    }
}
