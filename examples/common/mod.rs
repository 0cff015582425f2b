//! Timing shared by the throughput examples.

use std::time::Instant;

/// Best of `reps` timed runs of `f` (after one warm-up), in ns per element of `n`.
pub fn best_ns_per_elem(n: usize, reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    let mut best = f64::INFINITY;
    for _ in 0..reps {
        let t = Instant::now();
        f();
        best = best.min(t.elapsed().as_secs_f64());
    }
    best * 1e9 / n as f64
}
