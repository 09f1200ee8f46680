//! How far `scale_up_capacity` may grow a resource: one step, within the limits the user's
//! approval sets (the largest step, the largest size, the most a step may add to the monthly
//! bill). Every cloud's fix asks [`plan_growth`] with what it read from the resource and its
//! price, so the rule, and the sentence that explains a refusal, exist once.

/// The approval's limits, defaults filled in (`Conditions::growth_limits`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GrowthLimits {
    /// The step, in percent of the current size (at least 1).
    pub max_step_percent: u32,
    /// Storage is never grown past this many GiB.
    pub max_storage_gib: u64,
    /// A group never gets more instances than this (besides its own maximum).
    pub max_instances: Option<u32>,
    /// The most one step may add to the monthly bill, in US dollars.
    pub max_added_monthly_usd: f64,
}

/// What is being grown, in its unit.
#[derive(Debug, Clone, PartialEq)]
pub struct GrowthAsk {
    /// The size now (GiB of storage, instances of a group).
    pub current: u64,
    /// The unit's word: `GiB`, `instances`.
    pub unit: &'static str,
    /// The largest size the resource may reach: the approval's, or lower when the resource
    /// itself has a ceiling (a group's maximum, a volume type's largest size); with why.
    pub ceiling: u64,
    pub ceiling_source: String,
    /// The smallest growth the cloud accepts (RDS: 10 % of the allocated storage) or that is
    /// worth making; at least 1.
    pub min_step: u64,
    /// What one more unit costs a month, in US dollars; `None` when the price is not known.
    pub unit_monthly_usd: Option<f64>,
}

/// One step that fits every limit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Growth {
    pub from: u64,
    pub to: u64,
    /// What the step adds to the monthly bill at list prices.
    pub added_monthly_usd: f64,
}

impl Growth {
    pub fn added(&self) -> u64 {
        self.to - self.from
    }
}

/// Why no step fits, in a sentence that names the limit and what the user can change.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GrowthRefused {
    #[error("it is already at {current} {unit}, the most allowed ({limit_source})")]
    AtCeiling {
        current: u64,
        unit: &'static str,
        limit_source: String,
    },
    #[error("the smallest step the cloud accepts (+{min_step} {unit}) would pass {ceiling} {unit}, the most allowed ({limit_source})")]
    StepPastCeiling {
        min_step: u64,
        ceiling: u64,
        unit: &'static str,
        limit_source: String,
    },
    #[error("the smallest step (+{min_step} {unit}) adds ${cost:.2} a month, more than the approval's ${limit:.2} (raise max_added_monthly_usd to allow it)")]
    OverBudget {
        min_step: u64,
        unit: &'static str,
        cost: f64,
        limit: f64,
    },
    #[error("its price is not in the price table, so the added monthly cost cannot be held to the approval's ${limit:.2}")]
    UnknownPrice { limit: f64 },
}

/// One step up from `ask.current`: the approval's percentage (at least `min_step`), cut to
/// the ceiling and to what the monthly budget buys; refused when even the smallest step
/// breaks a limit.
pub fn plan_growth(ask: &GrowthAsk, limits: &GrowthLimits) -> Result<Growth, GrowthRefused> {
    let min_step = ask.min_step.max(1);
    if ask.current >= ask.ceiling {
        return Err(GrowthRefused::AtCeiling {
            current: ask.current,
            unit: ask.unit,
            limit_source: ask.ceiling_source.clone(),
        });
    }
    let room = ask.ceiling - ask.current;
    if room < min_step {
        return Err(GrowthRefused::StepPastCeiling {
            min_step,
            ceiling: ask.ceiling,
            unit: ask.unit,
            limit_source: ask.ceiling_source.clone(),
        });
    }
    let by_percent = (ask.current * u64::from(limits.max_step_percent)).div_ceil(100);
    let mut step = by_percent.max(min_step).min(room);
    let Some(price) = ask.unit_monthly_usd else {
        return Err(GrowthRefused::UnknownPrice {
            limit: limits.max_added_monthly_usd,
        });
    };
    if price > 0.0 {
        let affordable = (limits.max_added_monthly_usd / price).floor();
        let affordable = if affordable >= u64::MAX as f64 {
            u64::MAX
        } else {
            affordable as u64
        };
        if affordable < min_step {
            return Err(GrowthRefused::OverBudget {
                min_step,
                unit: ask.unit,
                cost: price * min_step as f64,
                limit: limits.max_added_monthly_usd,
            });
        }
        step = step.min(affordable);
    }
    Ok(Growth {
        from: ask.current,
        to: ask.current + step,
        added_monthly_usd: price * step as f64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> GrowthLimits {
        GrowthLimits {
            max_step_percent: 20,
            max_storage_gib: 1024,
            max_instances: None,
            max_added_monthly_usd: 100.0,
        }
    }

    fn disk(current: u64) -> GrowthAsk {
        GrowthAsk {
            current,
            unit: "GiB",
            ceiling: 1024,
            ceiling_source: "the approval's max_storage_gib".into(),
            min_step: 1,
            unit_monthly_usd: Some(0.08),
        }
    }

    #[test]
    fn a_step_is_the_approvals_percentage_rounded_up() {
        let g = plan_growth(&disk(100), &limits()).unwrap();
        assert_eq!((g.from, g.to), (100, 120));
        assert!((g.added_monthly_usd - 1.6).abs() < 1e-9);
        // 20 % of 8 GiB is 1.6: rounded up to 2.
        assert_eq!(plan_growth(&disk(8), &limits()).unwrap().to, 10);
    }

    #[test]
    fn the_ceiling_cuts_the_step_and_refuses_at_the_top() {
        assert_eq!(plan_growth(&disk(1000), &limits()).unwrap().to, 1024);
        let refused = plan_growth(&disk(1024), &limits()).unwrap_err();
        assert!(matches!(
            refused,
            GrowthRefused::AtCeiling { current: 1024, .. }
        ));
        assert!(refused.to_string().contains("max_storage_gib"), "{refused}");
        let rds = GrowthAsk {
            min_step: 100,
            ..disk(1000)
        };
        assert!(matches!(
            plan_growth(&rds, &limits()),
            Err(GrowthRefused::StepPastCeiling { .. })
        ));
    }

    #[test]
    fn the_budget_cuts_the_step_or_refuses_it() {
        let group = GrowthAsk {
            current: 10,
            unit: "instances",
            ceiling: 40,
            ceiling_source: "the group's maximum".into(),
            min_step: 1,
            unit_monthly_usd: Some(60.0),
        };
        // 20 % of 10 is 2 instances, $120: the $100 budget buys one.
        let g = plan_growth(&group, &limits()).unwrap();
        assert_eq!((g.to, g.added_monthly_usd), (11, 60.0));
        let dear = GrowthAsk {
            unit_monthly_usd: Some(140.0),
            ..group.clone()
        };
        let refused = plan_growth(&dear, &limits()).unwrap_err();
        assert!(
            refused.to_string().contains("max_added_monthly_usd"),
            "{refused}"
        );
        let unknown = GrowthAsk {
            unit_monthly_usd: None,
            ..group
        };
        assert!(matches!(
            plan_growth(&unknown, &limits()),
            Err(GrowthRefused::UnknownPrice { .. })
        ));
    }
}
