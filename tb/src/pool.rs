//! The one worker pool of the testbench: runs a job per item on `jobs` threads, each
//! thread taking the next item when it is free, and returns the results in item order.
//! Every simulator lives on the thread that created it, so a job builds its own DUT.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Worker threads for `--jobs`: the given number, else one per core; at least one.
pub fn jobs_or_cores(jobs: Option<usize>) -> usize {
    jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1)
}

/// Runs `job` on every item with up to `jobs` threads. `done` is called after each item
/// with its index and result and the number of items finished so far (in completion order,
/// one call at a time).
pub fn run<T, R, J, D>(items: &[T], jobs: usize, job: J, done: D) -> Vec<R>
where
    T: Sync,
    R: Send,
    J: Fn(&T) -> R + Sync,
    D: FnMut(usize, &R, usize) + Send,
{
    let next = AtomicUsize::new(0);
    let slots: Mutex<(Vec<Option<R>>, usize, D)> =
        Mutex::new(((0..items.len()).map(|_| None).collect(), 0, done));
    std::thread::scope(|s| {
        for _ in 0..jobs.max(1).min(items.len().max(1)) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(item) = items.get(i) else { break };
                let r = job(item);
                let mut g = slots.lock().unwrap_or_else(|p| p.into_inner());
                let (results, finished, done) = &mut *g;
                *finished += 1;
                done(i, &r, *finished);
                results[i] = Some(r);
            });
        }
    });
    let (results, _, _) = slots.into_inner().unwrap_or_else(|p| p.into_inner());
    // Every index below items.len() was taken by exactly one thread, which stored its result.
    results.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_come_back_in_item_order_and_every_item_runs_once() {
        let items: Vec<u64> = (0..97).collect();
        let mut seen = Vec::new();
        let out = run(&items, 3, |&x| x * x, |i, r, n| seen.push((i, *r, n)));
        assert_eq!(out, items.iter().map(|x| x * x).collect::<Vec<_>>());
        seen.sort_unstable();
        assert_eq!(seen.len(), 97);
        assert!(seen.iter().all(|&(i, r, _)| r == (i as u64) * (i as u64)));
        let mut counts: Vec<usize> = seen.iter().map(|s| s.2).collect();
        counts.sort_unstable();
        assert_eq!(counts, (1..=97).collect::<Vec<_>>());
    }

    #[test]
    fn no_items_no_threads_needed() {
        let out: Vec<u8> = run(&[] as &[u8], 4, |&x| x, |_, _, _| unreachable!());
        assert!(out.is_empty());
    }
}
