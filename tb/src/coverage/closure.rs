//! Coverage closure: how many bins the seeds had hit after each seed, in seed order, built
//! while the seeds finish in whatever order the worker pool finishes them.

use std::collections::BTreeMap;

use super::Coverage;

/// The bins hit by the first `seeds` seeds of the run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClosurePoint {
    /// Seeds counted so far (1 for the first).
    pub seeds: usize,
    /// The last of them.
    pub seed: u64,
    /// Bins of [`super::Bin::universe`] hit by at least one of them.
    pub bins_hit: usize,
}

/// Folds each seed's coverage into a running union in seed order. A seed that finishes
/// before an earlier one waits in `pending` until every earlier seed has been added.
#[derive(Clone, Debug, Default)]
pub struct Closure {
    union: Coverage,
    pending: BTreeMap<usize, (u64, Option<Coverage>)>,
    next: usize,
    points: Vec<ClosurePoint>,
}

impl Closure {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the seed at position `index` of the run (0 for the first seed); `cov` is its
    /// coverage, `None` when the seed failed (it then adds no bin but still counts as a seed).
    pub fn add(&mut self, index: usize, seed: u64, cov: Option<Coverage>) {
        self.pending.insert(index, (seed, cov));
        while let Some((seed, cov)) = self.pending.remove(&self.next) {
            if let Some(c) = cov {
                self.union.merge(&c);
            }
            self.next += 1;
            self.points.push(ClosurePoint {
                seeds: self.next,
                seed,
                bins_hit: self.union.summary().0,
            });
        }
    }

    /// The curve so far: one point per seed whose predecessors have all been added.
    pub fn points(&self) -> &[ClosurePoint] {
        &self.points
    }

    /// The union of every seed added, and the curve. Seeds still waiting for an earlier one
    /// (only when an index was skipped) are added in index order.
    pub fn finish(mut self) -> (Coverage, Vec<ClosurePoint>) {
        let rest = std::mem::take(&mut self.pending);
        for (_, (seed, cov)) in rest {
            if let Some(c) = cov {
                self.union.merge(&c);
            }
            self.next += 1;
            self.points.push(ClosurePoint {
                seeds: self.next,
                seed,
                bins_hit: self.union.summary().0,
            });
        }
        (self.union, self.points)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Bin, Inval};
    use super::*;

    fn cov(bins: &[Bin]) -> Coverage {
        let mut c = Coverage::new();
        for b in bins {
            c.hit(*b);
        }
        c
    }

    #[test]
    fn the_curve_follows_seed_order_whatever_the_finishing_order() {
        let a = Bin::Invalidation(Inval::Wait);
        let b = Bin::Invalidation(Inval::IotlbGlobal);
        let c = Bin::Recording { recorded: true };
        let mut cl = Closure::new();
        // Seeds 10, 11, 12, 13 finish as 12, 10, 13 (failed), 11.
        cl.add(2, 12, Some(cov(&[a, c])));
        assert!(cl.points().is_empty(), "seed 12 waits for 10 and 11");
        cl.add(0, 10, Some(cov(&[a])));
        assert_eq!(cl.points().len(), 1);
        cl.add(3, 13, None);
        cl.add(1, 11, Some(cov(&[a, b])));
        let (u, pts) = cl.finish();
        let hits: Vec<(usize, u64, usize)> =
            pts.iter().map(|p| (p.seeds, p.seed, p.bins_hit)).collect();
        assert_eq!(hits, [(1, 10, 1), (2, 11, 2), (3, 12, 3), (4, 13, 3)]);
        assert_eq!(u.count(&a), 3);
        assert_eq!(u.summary().0, 3);
    }

    #[test]
    fn finish_adds_what_still_waits() {
        let mut cl = Closure::new();
        cl.add(1, 5, Some(cov(&[Bin::Invalidation(Inval::Wait)])));
        let (_, pts) = cl.finish();
        assert_eq!(
            pts,
            [ClosurePoint {
                seeds: 1,
                seed: 5,
                bins_hit: 1
            }]
        );
    }
}
