//! One size down for an over-provisioned EC2 instance, and what it saves, from the price
//! table shipped in `data/ec2-on-demand-prices.yaml` (there is no Pricing API to ask in
//! moto or offline; the table says where and when its prices are from).

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::Deserialize;

const TABLE: &str = include_str!("../data/ec2-on-demand-prices.yaml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct PriceTable {
    source_region: String,
    as_of: String,
    hours_per_month: f64,
    families: BTreeMap<String, Vec<SizePrice>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct SizePrice {
    size: String,
    vcpu: u32,
    usd_per_hour: f64,
    /// Burstable sizes only: the CPU each vCPU may use without spending credits.
    #[serde(default)]
    baseline_percent: Option<f64>,
}

fn table() -> Option<&'static PriceTable> {
    static PARSED: OnceLock<Option<PriceTable>> = OnceLock::new();
    PARSED
        .get_or_init(|| match serde_norway::from_str(TABLE) {
            Ok(table) => Some(table),
            Err(e) => {
                // A unit test parses the shipped table, so this only guards a broken build.
                tracing::error!(error = %e, "the bundled EC2 price table does not parse; over-provisioned instances are reported without savings");
                None
            }
        })
        .as_ref()
}

/// Sizes in the order instance families grow, for types the table does not have: each is
/// the next smaller size of the one after it in most families.
const SIZE_LADDER: &[&str] = &[
    "nano", "micro", "small", "medium", "large", "xlarge", "2xlarge", "4xlarge", "8xlarge",
    "12xlarge", "16xlarge", "24xlarge", "32xlarge", "48xlarge",
];

/// What one size down would be for an instance type at its average CPU.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum SizeDown {
    /// In the table: the smaller type and the saving in USD per month at the table's prices.
    Priced {
        to: String,
        monthly_saving_usd: f64,
        /// The CPU the load would use on the smaller size, in percent.
        projected_cpu_percent: f64,
        price_region: &'static str,
        price_date: &'static str,
    },
    /// Not in the table: the next size down by name, no saving (the family may lack it).
    Unpriced { to: String },
    /// Nothing smaller to suggest: the family's smallest size, or a burstable size whose
    /// smaller sibling's CPU baseline the load would exceed. Not a finding.
    Keep,
}

fn split(instance_type: &str) -> Option<(&str, &str)> {
    instance_type.split_once('.')
}

/// One size down in the same family for `instance_type` running at `average_cpu` percent.
pub(crate) fn size_down(instance_type: &str, average_cpu: f64) -> SizeDown {
    let Some((family, size)) = split(instance_type) else {
        return SizeDown::Keep;
    };
    let known = table().and_then(|t| {
        let sizes = t.families.get(family)?;
        let at = sizes.iter().position(|s| s.size == size)?;
        Some((t, sizes, at))
    });
    let Some((table, sizes, at)) = known else {
        let Some(at) = SIZE_LADDER.iter().position(|s| *s == size) else {
            return SizeDown::Keep;
        };
        return match at.checked_sub(1) {
            Some(smaller) => SizeDown::Unpriced {
                to: format!("{family}.{}", SIZE_LADDER[smaller]),
            },
            None => SizeDown::Keep,
        };
    };
    let Some(smaller) = at.checked_sub(1).map(|i| &sizes[i]) else {
        return SizeDown::Keep;
    };
    let current = &sizes[at];
    // The same work on fewer vCPUs shows as a higher percentage.
    let projected = average_cpu * f64::from(current.vcpu) / f64::from(smaller.vcpu.max(1));
    if let Some(baseline) = smaller.baseline_percent {
        // A burstable size above its baseline spends credits and then slows down (or, in
        // unlimited mode, costs extra): only suggest it when the load stays below.
        if projected >= baseline {
            return SizeDown::Keep;
        }
    }
    let saving = (current.usd_per_hour - smaller.usd_per_hour) * table.hours_per_month;
    SizeDown::Priced {
        to: format!("{family}.{}", smaller.size),
        monthly_saving_usd: (saving * 100.0).round() / 100.0,
        projected_cpu_percent: projected,
        price_region: &table.source_region,
        price_date: &table.as_of,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_table_parses_and_every_family_grows_in_order() {
        let table = table().expect("the price table parses");
        assert_eq!(table.source_region, "us-east-1");
        assert_eq!(table.hours_per_month, 730.0);
        for (family, sizes) in &table.families {
            assert!(sizes.len() >= 2, "{family}");
            for pair in sizes.windows(2) {
                assert!(
                    pair[0].usd_per_hour < pair[1].usd_per_hour && pair[0].vcpu <= pair[1].vcpu,
                    "{family}: {} before {}",
                    pair[0].size,
                    pair[1].size
                );
            }
            let burstable = family.starts_with('t');
            assert!(
                sizes
                    .iter()
                    .all(|s| s.baseline_percent.is_some() == burstable),
                "{family}: baselines exactly for burstable sizes"
            );
        }
    }

    #[test]
    fn one_size_down_in_the_same_family_with_the_monthly_saving() {
        match size_down("m5.2xlarge", 12.0) {
            SizeDown::Priced {
                to,
                monthly_saving_usd,
                projected_cpu_percent,
                price_region,
                ..
            } => {
                assert_eq!(to, "m5.xlarge");
                // (0.384 - 0.192) USD/h × 730 h.
                assert_eq!(monthly_saving_usd, 140.16);
                assert_eq!(projected_cpu_percent, 24.0);
                assert_eq!(price_region, "us-east-1");
            }
            other => panic!("{other:?}"),
        }
        assert!(
            matches!(size_down("c5.12xlarge", 10.0), SizeDown::Priced { to, .. } if to == "c5.9xlarge")
        );
    }

    #[test]
    fn nothing_below_the_smallest_size_of_a_family() {
        assert_eq!(size_down("m5.large", 3.0), SizeDown::Keep);
        assert_eq!(size_down("t3.nano", 1.0), SizeDown::Keep);
        assert_eq!(size_down("m6g.medium", 1.0), SizeDown::Keep);
    }

    #[test]
    fn burstable_sizes_step_down_only_below_the_smaller_sizes_baseline() {
        // t3.large → t3.medium: both 2 vCPUs; the medium's baseline is 20 %.
        match size_down("t3.large", 12.0) {
            SizeDown::Priced {
                to,
                monthly_saving_usd,
                ..
            } => {
                assert_eq!(to, "t3.medium");
                assert_eq!(monthly_saving_usd, 30.37);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(size_down("t3.large", 25.0), SizeDown::Keep);
        // t3.small → t3.micro: the micro's baseline is 10 %.
        assert_eq!(size_down("t3.small", 12.0), SizeDown::Keep);
        // t3.xlarge (4 vCPUs) → t3.large (2): 15 % becomes 30 %, the large's baseline.
        assert_eq!(size_down("t3.xlarge", 15.0), SizeDown::Keep);
        assert!(
            matches!(size_down("t3.xlarge", 14.0), SizeDown::Priced { to, .. } if to == "t3.large")
        );
    }

    #[test]
    fn a_type_not_in_the_table_gets_a_size_but_no_saving() {
        assert_eq!(
            size_down("m5zn.2xlarge", 10.0),
            SizeDown::Unpriced {
                to: "m5zn.xlarge".into()
            }
        );
        assert_eq!(size_down("x1e.metal", 10.0), SizeDown::Keep);
        assert_eq!(size_down("not-a-type", 10.0), SizeDown::Keep);
    }
}
