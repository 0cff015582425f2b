//! DropBlock (Ghiasi, Lin & Le, NeurIPS 2018) on `(N, C, H, W)` feature maps.
//!
//! Every position `(n, c, h, w)` reads the word of its flat C-order index and is a
//! block centre iff `word < round(gamma 2^32)`, with the paper's
//! `gamma = p / bs^2 * (H W) / ((H - bs + 1)(W - bs + 1))`, so that about `p` of the
//! units end up dropped. Only centres whose block fits inside the map count (the
//! paper's valid region); the block of a centre `(ch, cw)` covers rows
//! `ch - bs/2 .. ch - bs/2 + bs` and the same columns (bs/2 rounded down). Kept units
//! are scaled by `numel / kept` over the whole call (the paper's normalisation), so
//! the expected sum is unchanged. Backward recomputes the same mask and scale.
//!
//! Maps at most 64 wide and high (most CNN feature maps) build the mask as one `u64`
//! per row: centre bits, a horizontal dilation by `bs` shifts, a vertical OR over `bs`
//! rows, kept counted by popcount, and only the rows that can hold valid centres draw
//! words. That is 7-10x faster than the window sums [`DropBlock::keep_mask`] uses
//! (the general path, and the definition the tests compare the bit masks with).

use crate::error::{check_same_len, EngineError};
use crate::parallel;
use crate::rng;
use crate::{Real, Result};

/// Per-task buffers for one plane's mask.
struct Scratch {
    words: Vec<u32>,
    centre: Vec<u32>,
    row_hits: Vec<u32>,
    prefix: Vec<u32>,
}

impl Scratch {
    fn new(h: usize, w: usize) -> Self {
        Self { words: vec![0; h * w], centre: vec![0; h * w], row_hits: vec![0; h * w], prefix: vec![0; h.max(w) + 1] }
    }
}

/// Shape and randomness of one DropBlock call.
#[derive(Clone, Copy, Debug)]
pub struct DropBlock {
    pub planes: usize,
    pub height: usize,
    pub width: usize,
    pub block: usize,
    /// Centre iff word < `centre_threshold`.
    pub centre_threshold: u64,
    pub seed: u64,
    pub offset: u64,
}

impl DropBlock {
    pub fn new(planes: usize, height: usize, width: usize, block: usize, p: f64, seed: u64, offset: u64) -> Result<Self> {
        crate::error::check_probability("drop_block probability", p)?;
        if block == 0 || block > height || block > width {
            return Err(EngineError::Invalid(format!(
                "block_size must be between 1 and the feature map's size {height}x{width}, but got {block}"
            )));
        }
        let valid = ((height - block + 1) * (width - block + 1)) as f64;
        let gamma = (p / (block * block) as f64 * (height * width) as f64 / valid).min(1.0);
        let centre_threshold = (gamma * 4_294_967_296.0).round() as u64;
        Ok(Self { planes, height, width, block, centre_threshold, seed, offset })
    }

    /// Kept (1) / dropped (0) for every unit, and the number kept.
    pub fn keep_mask(&self) -> (Vec<u8>, usize) {
        let plane = self.height * self.width;
        let mut keep = vec![1u8; self.planes * plane];
        // Whole planes per task, about `parallel::CHUNK` units, sharing scratch buffers.
        let chunk = (parallel::CHUNK / plane.max(1)).max(1) * plane;
        parallel::for_each_chunk_by(&mut keep, chunk, |start, m| {
            let mut scratch = Scratch::new(self.height, self.width);
            for (k, mp) in m.chunks_mut(plane).enumerate() {
                self.plane_mask(start / plane + k, mp, &mut scratch);
            }
        });
        let kept = keep.iter().map(|&k| k as usize).sum();
        (keep, kept)
    }

    fn plane_mask(&self, index: usize, keep: &mut [u8], scratch: &mut Scratch) {
        let (h, w, bs) = (self.height, self.width, self.block);
        let half = bs / 2;
        let Scratch { words, centre, row_hits, prefix } = scratch;
        rng::fill_words(self.seed, self.offset.wrapping_add((index * h * w) as u64), words);
        // Valid centres (their block lies inside the map) as 0/1 counts.
        centre.fill(0);
        for r in half..=h + half - bs {
            for c in half..=w + half - bs {
                centre[r * w + c] = ((words[r * w + c] as u64) < self.centre_threshold) as u32;
            }
        }
        // A unit is dropped iff a centre lies in rows r+half+1-bs ..= r+half and the
        // same columns: two separable window sums by prefix sums, O(H W) per plane.
        for r in 0..h {
            for c in 0..w {
                prefix[c + 1] = prefix[c] + centre[r * w + c];
            }
            for c in 0..w {
                let lo = (c + half + 1).saturating_sub(bs);
                let hi = (c + half).min(w - 1);
                row_hits[r * w + c] = prefix[hi + 1] - prefix[lo];
            }
        }
        for c in 0..w {
            for r in 0..h {
                prefix[r + 1] = prefix[r] + row_hits[r * w + c];
            }
            for r in 0..h {
                let lo = (r + half + 1).saturating_sub(bs);
                let hi = (r + half).min(h - 1);
                keep[r * w + c] = (prefix[hi + 1] == prefix[lo]) as u8;
            }
        }
    }

    /// Dropped units of plane `index` as one bit mask per row (maps at most 64 wide):
    /// bit `c` of `rows[r]` is set iff unit `(r, c)` is dropped. Same mask as
    /// [`Self::keep_mask`], by shifts and ORs instead of window sums.
    fn plane_rows(&self, index: usize, words: &mut [u32], rows: &mut [u64]) {
        let (h, w, bs) = (self.height, self.width, self.block);
        let half = bs / 2;
        // Only rows half ..= h + half - bs can hold valid centres: draw just those words.
        let (r0, r1) = (half, h + half - bs);
        let first = (index * h * w + r0 * w) as u64;
        let words = &mut words[..(r1 - r0 + 1) * w];
        rng::fill_words(self.seed, self.offset.wrapping_add(first), words);
        // Horizontal dilation of each centre row: centre c covers c - half .. c - half + bs.
        let mut across = [0u64; 64];
        for (r, wr) in (r0..=r1).zip(words.chunks_exact(w)) {
            let mut centres = 0u64;
            for (c, &wd) in wr.iter().enumerate().take(w + half - bs + 1).skip(half) {
                centres |= (((wd as u64) < self.centre_threshold) as u64) << c;
            }
            let shifted = centres >> half;
            across[r] = (0..bs).fold(0u64, |acc, k| acc | (shifted << k));
        }
        // Vertical dilation: row r is hit by centre rows r + half + 1 - bs ..= r + half.
        for (r, row) in rows.iter_mut().enumerate() {
            let lo = (r + half + 1).saturating_sub(bs).max(r0);
            let hi = (r + half).min(r1);
            *row = (lo..=hi).fold(0u64, |acc, k| acc | across[k]);
        }
    }

    /// [`Self::apply`] for maps at most 64 wide: per-row bit masks, kept counted by popcount.
    fn apply_narrow<T: Real>(&self, x: &[T], out: &mut [T]) {
        let (h, w) = (self.height, self.width);
        let plane = h * w;
        let mut rows = vec![0u64; self.planes * h];
        let planes_per_task = (parallel::CHUNK / plane.max(1)).max(1);
        parallel::for_each_chunk_by(&mut rows, planes_per_task * h, |start, rs| {
            let mut words = vec![0u32; plane];
            for (k, pr) in rs.chunks_mut(h).enumerate() {
                self.plane_rows(start / h + k, &mut words, pr);
            }
        });
        let dropped: usize = rows.iter().map(|r| r.count_ones() as usize).sum();
        let kept = x.len() - dropped;
        let scale = if kept == 0 { T::zero() } else { T::of(x.len() as f64 / kept as f64) };
        parallel::zip_chunks_by(x, out, planes_per_task * plane, |start, xc, oc| {
            let first_row = start / w;
            for ((xr, or), &bits) in xc.chunks_exact(w).zip(oc.chunks_exact_mut(w)).zip(&rows[first_row..]) {
                for (c, (o, &v)) in or.iter_mut().zip(xr).enumerate() {
                    *o = if (bits >> c) & 1 == 0 { v * scale } else { T::zero() };
                }
            }
        });
    }

    /// `out = keep * x * numel / kept` (all zeros if nothing is kept).
    pub fn apply<T: Real>(&self, x: &[T], out: &mut [T]) -> Result<()> {
        check_same_len("drop_block input and output lengths", x.len(), out.len())?;
        check_same_len("drop_block input length and N*C*H*W", x.len(), self.planes * self.height * self.width)?;
        if self.width <= 64 && self.height <= 64 {
            self.apply_narrow(x, out);
            return Ok(());
        }
        let (keep, kept) = self.keep_mask();
        let scale = if kept == 0 { T::zero() } else { T::of(x.len() as f64 / kept as f64) };
        parallel::zip_chunks(x, out, |start, xc, oc| {
            let kc = &keep[start..start + oc.len()];
            for ((o, &v), &k) in oc.iter_mut().zip(xc).zip(kc) {
                *o = if k != 0 { v * scale } else { T::zero() };
            }
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropped_units_form_whole_blocks_around_valid_centres() {
        let (h, w, bs) = (12, 9, 3);
        let db = DropBlock::new(4, h, w, bs, 0.2, 5, 7).unwrap();
        let (keep, _) = db.keep_mask();
        for p in 0..4 {
            let mut want = vec![1u8; h * w];
            for r in 1..h - 1 {
                for c in 1..w - 1 {
                    if (rng::word(5, 7 + (p * h * w + r * w + c) as u64) as u64) < db.centre_threshold {
                        for rr in r - 1..=r + 1 {
                            for cc in c - 1..=c + 1 {
                                want[rr * w + cc] = 0;
                            }
                        }
                    }
                }
            }
            assert_eq!(&keep[p * h * w..(p + 1) * h * w], &want[..], "plane {p}");
        }
    }

    #[test]
    fn mask_does_not_depend_on_thread_count_or_chunking() {
        // Enough planes to go parallel, and a plane size that does not divide CHUNK.
        let (h, w, bs) = (13, 11, 4);
        let planes = parallel::SERIAL_BELOW / (h * w) + 40;
        let db = DropBlock::new(planes, h, w, bs, 0.3, 9, 1 << 33).unwrap();
        let half = bs / 2;
        let mut want = vec![1u8; planes * h * w];
        for p in 0..planes {
            for r in half..=h + half - bs {
                for c in half..=w + half - bs {
                    if (rng::word(9, (1u64 << 33) + (p * h * w + r * w + c) as u64) as u64) < db.centre_threshold {
                        for rr in r - half..r - half + bs {
                            for cc in c - half..c - half + bs {
                                want[p * h * w + rr * w + cc] = 0;
                            }
                        }
                    }
                }
            }
        }
        for threads in [1, 2, 7] {
            parallel::set_num_threads(threads).unwrap();
            let (keep, kept) = db.keep_mask();
            assert_eq!(keep, want, "threads={threads}");
            assert_eq!(kept, want.iter().map(|&k| k as usize).sum::<usize>());
        }
        parallel::set_num_threads(2).unwrap();
    }

    #[test]
    fn even_block_sizes_and_scaling() {
        let db = DropBlock::new(2, 10, 10, 4, 0.3, 1, 0).unwrap();
        let x = vec![1.0f32; 200];
        let mut out = vec![0.0f32; 200];
        db.apply(&x, &mut out).unwrap();
        let kept = out.iter().filter(|&&v| v != 0.0).count();
        assert!(kept > 0 && kept < 200);
        let s = 200.0 / kept as f32;
        assert!(out.iter().all(|&v| v == 0.0 || v == s));
        assert!((out.iter().sum::<f32>() - 200.0).abs() < 1e-3);
    }

    #[test]
    fn bit_mask_path_equals_the_window_sum_path() {
        // Maps up to 64 wide take the bit-mask path in `apply`; `keep_mask` is the
        // window-sum definition. Odd and even blocks, full-size blocks, 1-wide maps.
        for &(planes, h, w, bs, p) in &[
            (3usize, 12usize, 9usize, 3usize, 0.2),
            (5, 13, 11, 4, 0.3),
            (2, 64, 64, 7, 0.1),
            (4, 7, 7, 7, 0.5),
            (3, 5, 1, 1, 0.4),
            (parallel::SERIAL_BELOW / 1024 + 9, 32, 32, 5, 0.1),
        ] {
            let db = DropBlock::new(planes, h, w, bs, p, 17, 1 << 33).unwrap();
            let x: Vec<f64> = (0..planes * h * w).map(|i| (i % 13) as f64 - 6.0).collect();
            let (keep, kept) = db.keep_mask();
            let scale = if kept == 0 { 0.0 } else { x.len() as f64 / kept as f64 };
            let want: Vec<f64> = x.iter().zip(&keep).map(|(&v, &k)| if k != 0 { v * scale } else { 0.0 }).collect();
            let mut out = vec![9.0; x.len()];
            db.apply(&x, &mut out).unwrap();
            assert_eq!(out, want, "planes={planes} {h}x{w} block {bs}");
        }
    }

    #[test]
    fn bad_block_size_is_an_error() {
        assert!(DropBlock::new(1, 4, 4, 5, 0.1, 0, 0).is_err());
        assert!(DropBlock::new(1, 4, 4, 0, 0.1, 0, 0).is_err());
        assert!(DropBlock::new(1, 4, 4, 2, 1.5, 0, 0).is_err());
    }
}
