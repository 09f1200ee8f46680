//! Splitting one night's scan across invocations, so none approaches the platform's time
//! limit (Lambda: 15 minutes): the work is the list of (check, region) pairs, each pair's
//! result is kept once it is done, and an invocation runs pending pairs only while its
//! deadline leaves a safety margin, then hands the run on to a fresh invocation. This is
//! the decision, over plain data; `escher-scan` keeps the parts and does the handing on.

use std::collections::BTreeSet;
use std::time::Duration;

use super::ScanPair;

/// What an invocation does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NextStep {
    /// Run these pairs now (then decide again).
    Run(Vec<ScanPair>),
    /// Every pair is done, or no invocation is left: build and store the report (pairs
    /// without a result are reported as not scanned).
    Assemble,
    /// Too little time is left: hand the run on to the next invocation.
    HandOn,
}

/// Where one invocation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Time left before the deadline; `None`: no deadline (the CLI runs everything at once).
    pub time_left: Option<Duration>,
    /// Pairs are started only while more than this is left.
    pub margin: Duration,
    /// How many pairs this invocation has run so far.
    pub ran: usize,
    /// This invocation's number in the run (1 for the first).
    pub invocation: u32,
    /// The last invocation a run may hand on to; it assembles whatever is done.
    pub max_invocations: u32,
}

/// The pairs of `all` without a result in `done`, in `all`'s order; at most `batch` of them
/// are run before the time is looked at again.
pub fn next_step(
    all: &[ScanPair],
    done: &BTreeSet<ScanPair>,
    budget: Budget,
    batch: usize,
) -> NextStep {
    let pending: Vec<ScanPair> = all.iter().filter(|p| !done.contains(p)).cloned().collect();
    if pending.is_empty() {
        return NextStep::Assemble;
    }
    let batch = batch.max(1);
    match budget.time_left {
        None => NextStep::Run(pending),
        Some(left) if left > budget.margin => {
            NextStep::Run(pending.into_iter().take(batch).collect())
        }
        // Every invocation finishes at least one pair, so a margin as long as the function's
        // whole timeout still makes progress instead of handing on for ever.
        Some(_) if budget.ran == 0 => NextStep::Run(pending.into_iter().take(1).collect()),
        Some(_) if budget.invocation >= budget.max_invocations => NextStep::Assemble,
        Some(_) => NextStep::HandOn,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(n: usize) -> Vec<ScanPair> {
        (0..n)
            .map(|i| ScanPair {
                check: format!("check{}", i % 3),
                region: format!("region{}", i / 3),
            })
            .collect()
    }

    fn budget(left_secs: Option<u64>, ran: usize, invocation: u32) -> Budget {
        Budget {
            time_left: left_secs.map(Duration::from_secs),
            margin: Duration::from_secs(120),
            ran,
            invocation,
            max_invocations: 5,
        }
    }

    #[test]
    fn without_a_deadline_everything_pending_runs_at_once() {
        let all = pairs(6);
        let done = BTreeSet::from([all[1].clone(), all[4].clone()]);
        let NextStep::Run(run) = next_step(&all, &done, budget(None, 0, 1), 2) else {
            panic!("expected Run")
        };
        assert_eq!(
            run,
            [
                all[0].clone(),
                all[2].clone(),
                all[3].clone(),
                all[5].clone()
            ]
        );
    }

    #[test]
    fn with_time_left_a_batch_of_pending_pairs_runs_never_a_finished_one() {
        let all = pairs(6);
        let done = BTreeSet::from([all[0].clone()]);
        assert_eq!(
            next_step(&all, &done, budget(Some(600), 3, 1), 2),
            NextStep::Run(vec![all[1].clone(), all[2].clone()])
        );
    }

    #[test]
    fn inside_the_margin_the_run_is_handed_on_after_at_least_one_pair() {
        let all = pairs(4);
        let done = BTreeSet::new();
        assert_eq!(
            next_step(&all, &done, budget(Some(119), 0, 1), 4),
            NextStep::Run(vec![all[0].clone()]),
            "a fresh invocation always makes progress"
        );
        assert_eq!(
            next_step(&all, &done, budget(Some(119), 1, 1), 4),
            NextStep::HandOn
        );
        assert_eq!(
            next_step(&all, &done, budget(Some(0), 2, 4), 4),
            NextStep::HandOn
        );
        assert_eq!(
            next_step(&all, &done, budget(Some(0), 2, 5), 4),
            NextStep::Assemble,
            "the last invocation assembles what is done"
        );
    }

    #[test]
    fn all_done_assembles_whatever_the_time() {
        let all = pairs(3);
        let done: BTreeSet<ScanPair> = all.iter().cloned().collect();
        for left in [None, Some(0), Some(900)] {
            assert_eq!(
                next_step(&all, &done, budget(left, 0, 1), 2),
                NextStep::Assemble
            );
        }
    }
}
