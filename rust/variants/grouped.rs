//! Dropout of whole groups of contiguous elements: one word per group.
//!
//! With `x` viewed as `(groups, inner)` in C order, group `g` reads word `offset + g`
//! and is kept iff `word < threshold`; every element of a kept group becomes
//! `map.kept(x)`, every element of a dropped group `map.dropped()`. Channel dropout
//! is `inner = spatial size` (groups are (sample, channel) pairs), DropPath is
//! `inner = numel / batch` (groups are samples).

use crate::dropout::KeepMap;
use crate::error::{check_same_len, EngineError};
use crate::parallel;
use crate::rng::{self, BLOCK};
use crate::{Real, Result};

/// `out = map(x)` group by group; `x.len()` must be a multiple of `inner`.
pub fn grouped_masked_map<T: Real, M: KeepMap<T>>(
    x: &[T],
    out: &mut [T],
    inner: usize,
    threshold: u64,
    map: M,
    seed: u64,
    offset: u64,
) -> Result<()> {
    check_same_len("grouped dropout input and output lengths", x.len(), out.len())?;
    if inner == 0 || !x.len().is_multiple_of(inner) {
        return Err(EngineError::Invalid(format!(
            "grouped dropout: {} elements do not split into groups of {inner}",
            x.len()
        )));
    }
    // Whole groups per task, about `parallel::CHUNK` elements each.
    let chunk = (parallel::CHUNK / inner).max(1) * inner;
    parallel::zip_chunks_by(x, out, chunk, |start, xc, oc| {
        let first_group = (start / inner) as u64;
        let mut words = [0u32; BLOCK];
        for (k, (xg, og)) in xc.chunks(BLOCK * inner).zip(oc.chunks_mut(BLOCK * inner)).enumerate() {
            let groups = og.len() / inner;
            let w = &mut words[..groups];
            rng::fill_words(seed, offset.wrapping_add(first_group + (k * BLOCK) as u64), w);
            for ((xs, os), &wd) in xg.chunks(inner).zip(og.chunks_mut(inner)).zip(w.iter()) {
                if (wd as u64) < threshold {
                    os.iter_mut().zip(xs).for_each(|(o, &v)| *o = map.kept(v));
                } else {
                    os.fill(map.dropped());
                }
            }
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dropout::{Affine, Scale};

    #[allow(clippy::too_many_arguments)]
    fn reference(x: &[f64], inner: usize, threshold: u64, a: f64, b: f64, d: f64, seed: u64, offset: u64) -> Vec<f64> {
        x.iter()
            .enumerate()
            .map(|(i, &v)| if (rng::word(seed, offset + (i / inner) as u64) as u64) < threshold { a * v + b } else { d })
            .collect()
    }

    #[test]
    fn matches_reference_for_many_group_sizes_and_threads() {
        for &(groups, inner) in &[(1usize, 1usize), (7, 3), (300, 1), (2000, 37), (3, 50_000), (129, 1024)] {
            let x: Vec<f64> = (0..groups * inner).map(|i| i as f64 - 5.0).collect();
            let t = rng::keep_threshold(0.3);
            let want = reference(&x, inner, t, 1.0 / 0.7, 0.0, 0.0, 9, 13);
            for threads in [1, 2, 5] {
                parallel::set_num_threads(threads).unwrap();
                let mut out = vec![7.0; x.len()];
                grouped_masked_map(&x, &mut out, inner, t, Scale(1.0 / 0.7), 9, 13).unwrap();
                assert_eq!(out, want, "groups={groups} inner={inner} threads={threads}");
            }
            let mut out = vec![0.0; x.len()];
            let map = Affine { a: 2.0, b: 0.5, dropped: -1.25 };
            grouped_masked_map(&x, &mut out, inner, t, map, 1, 0).unwrap();
            assert_eq!(out, reference(&x, inner, t, 2.0, 0.5, -1.25, 1, 0));
        }
        parallel::set_num_threads(2).unwrap();
    }

    #[test]
    fn groups_are_kept_or_dropped_whole() {
        let x = vec![1.0f32; 64 * 100];
        let mut out = vec![0.0f32; x.len()];
        grouped_masked_map(&x, &mut out, 100, rng::keep_threshold(0.5), Scale(2.0f32), 3, 0).unwrap();
        for g in out.chunks(100) {
            assert!(g.iter().all(|&v| v == g[0]) && (g[0] == 0.0 || g[0] == 2.0));
        }
    }

    #[test]
    fn bad_group_size_is_an_error() {
        let mut out = vec![0.0f32; 10];
        assert!(grouped_masked_map(&[0.0f32; 10], &mut out, 3, 0, Scale(1.0f32), 0, 0).is_err());
        assert!(grouped_masked_map(&[0.0f32; 10], &mut out, 0, 0, Scale(1.0f32), 0, 0).is_err());
    }
}
