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
//! Maps at most 64 wide and high (most CNN feature maps) build the mask as bits, in
//! two parallel passes. Pass 1, per plane: draw the words of the rows that can hold
//! valid centres, compare them with the threshold into bits (eight words per compare
//! and `movemask` on AVX2), and for each row that holds a centre (a few per plane at
//! the usual p) dilate it across the block's columns with shifts and OR it into the
//! `bs` rows its blocks cover, in one flat bit mask of the whole call (bit `i` set =
//! unit `i` dropped); each task counts its dropped bits by popcount. Pass 2 applies
//! the mask 64 units at a time, branch-free: kept `x * scale`, dropped exactly `0`
//! (non-temporal stores for outputs past the cache). Philox words set the cost of
//! pass 1 (0.875 words per unit on 32x32 maps with block 5), memory that of pass 2.
//! The window sums of [`DropBlock::keep_mask`] are the general path (larger maps) and
//! the definition the tests compare the bit path with.

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::error::{check_same_len, EngineError};
use crate::parallel;
use crate::rng::{self, Isa};
#[cfg(target_arch = "x86_64")]
use crate::rng::Level;
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

    /// `out = keep * x * numel / kept` (all zeros if nothing is kept).
    pub fn apply<T: Real>(&self, x: &[T], out: &mut [T]) -> Result<()> {
        self.apply_with(rng::isa(), x, out)
    }

    /// [`Self::apply`] on an explicit instruction set (every set gives the same bits).
    pub fn apply_with<T: Real>(&self, isa: Isa, x: &[T], out: &mut [T]) -> Result<()> {
        check_same_len("drop_block input and output lengths", x.len(), out.len())?;
        check_same_len("drop_block input length and N*C*H*W", x.len(), self.planes * self.height * self.width)?;
        if self.width <= 64 && self.height <= 64 {
            let stream = std::mem::size_of_val(out) >= crate::dropout::stream_threshold();
            self.apply_bits(isa, x, out, stream);
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

    /// The bit-mask path (maps at most 64 wide and high); `stream`: write `out` with
    /// non-temporal stores on the SIMD paths.
    fn apply_bits<T: Real>(&self, isa: Isa, x: &[T], out: &mut [T], stream: bool) {
        let (bits, dropped) = self.dropped_bits(isa);
        let kept = x.len() - dropped;
        let scale = if kept == 0 { T::zero() } else { T::of(x.len() as f64 / kept as f64) };
        // Chunks of whole 64-unit words of the mask.
        parallel::zip_chunks_by(x, out, parallel::CHUNK, |start, xc, oc| {
            apply::run(isa, &bits[start / 64..], xc, oc, scale, stream)
        });
    }

    /// The dropped units of a call on maps at most 64 wide and high, as one flat bit
    /// mask (bit `i % 64` of word `i / 64` is set iff unit `i` is dropped), and how
    /// many there are. Same mask as [`Self::keep_mask`], by shifts and ORs.
    fn dropped_bits(&self, isa: Isa) -> (Vec<u64>, usize) {
        debug_assert!(self.width <= 64 && self.height <= 64);
        let plane = self.height * self.width;
        let n = self.planes * plane;
        let mut bits = vec![0u64; n.div_ceil(64)];
        if n == 0 {
            return (bits, 0);
        }
        // Tasks of whole planes, about `parallel::CHUNK` units, each starting on a word
        // boundary of the mask so that no two tasks write the same word.
        let align = 64 / gcd(plane, 64);
        let planes_per_task = (parallel::CHUNK / plane).max(1).next_multiple_of(align);
        let words_per_task = planes_per_task * plane / 64;
        let dropped = AtomicUsize::new(0);
        let task = |k: usize, dst: &mut [u64]| {
            let first = k * planes_per_task;
            let planes = planes_per_task.min(self.planes - first);
            dropped.fetch_add(masks::run(isa, self, first, planes, dst), Ordering::Relaxed);
        };
        if parallel::worth_parallel(n) && self.planes > planes_per_task {
            use rayon::prelude::*;
            parallel::install(|| bits.par_chunks_mut(words_per_task).enumerate().for_each(|(k, d)| task(k, d)));
        } else {
            bits.chunks_mut(words_per_task).enumerate().for_each(|(k, d)| task(k, d));
        }
        (bits, dropped.into_inner())
    }
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// `c | c << 1 | ... | c << (bs - 1)` (a row of centre bits dilated to blocks), by doubling.
#[inline(always)]
fn dilate(c: u64, bs: usize) -> u64 {
    let (mut a, mut len) = (c, 1);
    while 2 * len <= bs {
        a |= a << len;
        len *= 2;
    }
    if len < bs {
        a |= a << (bs - len); // bs - len < len: the two ranges overlap
    }
    a
}

/// Bits `at .. at + 64` of the flat bit array `bits` (bits past its end read 0).
#[inline(always)]
fn bits_at(bits: &[u64], at: usize) -> u64 {
    let (q, s) = (at / 64, at % 64);
    let lo = bits.get(q).copied().unwrap_or(0) >> s;
    if s == 0 {
        lo
    } else {
        lo | bits.get(q + 1).copied().unwrap_or(0) << (64 - s)
    }
}

/// OR the `w` low bits of `row` into the flat mask `dst` at bit `at`.
#[inline(always)]
fn put_row(dst: &mut [u64], at: usize, w: usize, row: u64) {
    let (q, s) = (at / 64, at % 64);
    dst[q] |= row << s;
    if s + w > 64 {
        dst[q + 1] |= row >> (64 - s);
    }
}

/// The instruction-set levels the kernels below are compiled for (a const parameter).
const SCALAR: u8 = 0;
#[cfg(target_arch = "x86_64")]
const AVX2: u8 = 1;

mod masks {
    //! Pass 1: the dropped bits of a run of planes.

    use super::*;

    /// Bit `j % 64` of `bits[j / 64]` set iff `words[j] < t`, for every word.
    #[inline(always)]
    fn centres<const LEVEL: u8>(words: &[u32], t: u32, bits: &mut [u64]) {
        #[cfg(target_arch = "x86_64")]
        if LEVEL == AVX2 {
            // SAFETY: LEVEL == AVX2 only inside `dropped_in_avx2`, which `run` calls only
            // with an `Isa` whose level includes AVX2 (detected by `Isa::new`).
            return unsafe { avx2::centres(words, t, bits) };
        }
        for (b, ws) in bits.iter_mut().zip(words.chunks(64)) {
            *b = ws.iter().enumerate().fold(0, |acc, (c, &wd)| acc | ((wd < t) as u64) << c);
        }
    }

    /// Dropped bits of planes `first .. first + planes` into `dst` (zeroed; bit 0 is
    /// the first plane's first unit); returns how many are set.
    #[inline(always)]
    fn dropped_in<const LEVEL: u8>(isa: Isa, db: &DropBlock, first: usize, planes: usize, dst: &mut [u64]) -> usize {
        let (h, w, bs) = (db.height, db.width, db.block);
        let plane = h * w;
        let half = bs / 2;
        // Only rows half ..= h + half - bs can hold valid centres: draw just those words.
        let (r0, r1) = (half, h + half - bs);
        let mut words = vec![0u32; (r1 - r0 + 1) * w];
        // Which drawn words are below the threshold, one bit each (as a flat bit array).
        let mut below = [0u64; 64];
        // Valid centre columns half ..= w + half - bs.
        let valid = (u64::MAX >> (64 - (w + 1 - bs))) << half;
        let all = db.centre_threshold >= 1 << 32;
        let t = db.centre_threshold as u32;
        for k in 0..planes {
            let at = ((first + k) * plane + r0 * w) as u64;
            rng::fill_words_with(isa, db.seed, db.offset.wrapping_add(at), &mut words);
            if !all {
                centres::<LEVEL>(&words, t, &mut below);
            }
            // Centres are sparse at the usual p (a few per plane): OR each row that has
            // any, dilated across its blocks' columns, into the bs rows its blocks cover.
            for (i, r) in (r0..=r1).enumerate() {
                let row = if all { valid } else { bits_at(&below, i * w) & valid };
                if row != 0 {
                    // Centre (r, c) covers rows r - half .. r - half + bs, columns c - half ..
                    let blocks = dilate(row >> half, bs);
                    for rr in r - half..r - half + bs {
                        put_row(dst, k * plane + rr * w, w, blocks);
                    }
                }
            }
        }
        dst.iter().map(|b| b.count_ones() as usize).sum()
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    fn dropped_in_avx2(isa: Isa, db: &DropBlock, first: usize, n: usize, dst: &mut [u64]) -> usize {
        dropped_in::<AVX2>(isa, db, first, n, dst)
    }

    pub(super) fn run(isa: Isa, db: &DropBlock, first: usize, n: usize, dst: &mut [u64]) -> usize {
        match isa.level() {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: an `Isa` of level Avx2 or Avx512 exists only when AVX2 and FMA were
            // detected on this CPU (`rng::Isa::new`): every feature `dropped_in_avx2` enables.
            Level::Avx2 | Level::Avx512 => unsafe { dropped_in_avx2(isa, db, first, n, dst) },
            _ => dropped_in::<SCALAR>(isa, db, first, n, dst),
        }
    }

    #[cfg(target_arch = "x86_64")]
    mod avx2 {
        use std::arch::x86_64::*;

        /// [`super::centres`]: eight unsigned compares (as signed, both sides offset
        /// by 2^31) and one `movemask` per eight words. Centres are sparse, so the
        /// compares of 64 words are first ORed and tested: most give no bit at all.
        #[target_feature(enable = "avx2")]
        pub(super) fn centres(words: &[u32], t: u32, bits: &mut [u64]) {
            let bias = _mm256_set1_epi32(i32::MIN);
            let tb = _mm256_set1_epi32((t ^ 0x8000_0000) as i32);
            for (b, ws) in bits.iter_mut().zip(words.chunks(64)) {
                if let Ok(ws) = <&[u32; 64]>::try_from(ws) {
                    let mut lt = [_mm256_setzero_si256(); 8];
                    for (g, l) in lt.iter_mut().enumerate() {
                        // SAFETY: words 8g .. 8g + 8 of the 64 = 32 readable bytes; unaligned load.
                        let v = unsafe { _mm256_loadu_si256(ws.as_ptr().add(8 * g) as *const __m256i) };
                        *l = _mm256_cmpgt_epi32(tb, _mm256_xor_si256(v, bias));
                    }
                    let any = lt.iter().fold(_mm256_setzero_si256(), |a, &l| _mm256_or_si256(a, l));
                    *b = if _mm256_testz_si256(any, any) == 1 {
                        0
                    } else {
                        lt.iter().enumerate().fold(0, |acc, (g, &l)| {
                            acc | (_mm256_movemask_ps(_mm256_castsi256_ps(l)) as u32 as u64) << (8 * g)
                        })
                    };
                    continue;
                }
                let mut acc = 0u64;
                let mut groups = ws.chunks_exact(8);
                for (g, c) in (&mut groups).enumerate() {
                    // SAFETY: `c` is 8 u32 = 32 readable bytes; the load is unaligned.
                    let v = unsafe { _mm256_loadu_si256(c.as_ptr() as *const __m256i) };
                    let lt = _mm256_cmpgt_epi32(tb, _mm256_xor_si256(v, bias));
                    acc |= (_mm256_movemask_ps(_mm256_castsi256_ps(lt)) as u32 as u64) << (8 * g);
                }
                let base = ws.len() / 8 * 8;
                for (c, &wd) in groups.remainder().iter().enumerate() {
                    acc |= ((wd < t) as u64) << (base + c);
                }
                *b = acc;
            }
        }
    }
}

mod apply {
    //! Pass 2: `out = x * scale` where the mask bit is clear, exactly `0` where set.
    //! Outputs too big to stay in cache are written with non-temporal stores (as
    //! element dropout does, [`crate::dropout::stream_threshold`]): that skips the read
    //! for ownership of every output line, a third of the memory traffic.

    use super::*;

    /// Units `at ..` one at a time (the ends of a chunk).
    #[inline(always)]
    fn units<T: Real>(bits: &[u64], at: usize, x: &[T], out: &mut [T], scale: T) {
        for (i, (o, &v)) in out.iter_mut().zip(x).enumerate() {
            let dropped = (bits[(at + i) / 64] >> ((at + i) % 64)) & 1 != 0;
            *o = if dropped { T::zero() } else { v * scale };
        }
    }

    /// 64 units, branch-free. Written over 32-bit halves of the mask with constant
    /// bit tests so that it vectorises as AND, compare and blend per vector of units.
    #[inline(always)]
    fn group<T: Real>(b: u64, x: &[T; 64], o: &mut [T; 64], scale: T) {
        for h in 0..2 {
            let bits = (b >> (32 * h)) as u32;
            for i in 0..32 {
                let v = x[32 * h + i] * scale;
                o[32 * h + i] = if bits & (1 << i) == 0 { v } else { T::zero() };
            }
        }
    }

    /// One chunk; bit 0 of `bits` is unit `x[0]`. With `STREAM` the 64-unit groups
    /// start on a 32-byte boundary of `out`, are built in registers and written with
    /// non-temporal stores.
    #[inline(always)]
    fn chunk<T: Real, const STREAM: bool>(bits: &[u64], x: &[T], out: &mut [T], scale: T) {
        let head = if STREAM { out.as_ptr().align_offset(32).min(out.len()) } else { 0 };
        units(bits, 0, &x[..head], &mut out[..head], scale);
        let body = (out.len() - head) / 64 * 64;
        for at in (head..head + body).step_by(64) {
            let b = bits_at(bits, at);
            let xg: &[T; 64] = x[at..at + 64].try_into().expect("64 units");
            let og: &mut [T; 64] = (&mut out[at..at + 64]).try_into().expect("64 units");
            if STREAM {
                let mut staged = [T::zero(); 64];
                group(b, xg, &mut staged, scale);
                #[cfg(target_arch = "x86_64")]
                // SAFETY: STREAM is true only inside `chunk_stream_avx2`, which `run`
                // calls only with an `Isa` whose level includes AVX2; `og` starts at
                // `out[head + 64k]`, 32-byte aligned since `out[head]` is and 64 units
                // are a multiple of 32 bytes.
                unsafe {
                    stream::store(og, &staged)
                };
                #[cfg(not(target_arch = "x86_64"))]
                og.copy_from_slice(&staged);
            } else {
                group(b, xg, og, scale);
            }
        }
        units(bits, head + body, &x[head + body..], &mut out[head + body..], scale);
        #[cfg(target_arch = "x86_64")]
        if STREAM {
            // SAFETY: SSE is part of the x86-64 baseline. Streaming stores are weakly
            // ordered: the fence orders them before the chunk counts as done.
            unsafe { std::arch::x86_64::_mm_sfence() };
        }
    }

    #[cfg(target_arch = "x86_64")]
    mod stream {
        use std::arch::x86_64::*;

        /// `dst = src` by `_mm256_stream_si256`.
        ///
        /// # Safety
        /// AVX2 is available and `dst` is 32-byte aligned.
        #[inline]
        #[target_feature(enable = "avx2")]
        pub(super) unsafe fn store<T: Copy>(dst: &mut [T; 64], src: &[T; 64]) {
            debug_assert_eq!(dst.as_ptr().align_offset(32), 0);
            let (d, s) = (dst.as_mut_ptr() as *mut u8, src.as_ptr() as *const u8);
            for k in 0..std::mem::size_of::<[T; 64]>() / 32 {
                // SAFETY: bytes 32k .. 32k + 32 lie inside both arrays (T is f32 or f64,
                // so 64 of them are a multiple of 32 bytes); `d + 32k` is 32-byte aligned
                // (the caller's promise), as the streaming store requires; the source
                // load is unaligned; `&mut` and `&` do not overlap.
                unsafe { _mm256_stream_si256(d.add(32 * k) as *mut __m256i, _mm256_loadu_si256(s.add(32 * k) as *const __m256i)) };
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    fn chunk_avx2<T: Real>(bits: &[u64], x: &[T], out: &mut [T], scale: T) {
        chunk::<T, false>(bits, x, out, scale)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    fn chunk_stream_avx2<T: Real>(bits: &[u64], x: &[T], out: &mut [T], scale: T) {
        chunk::<T, true>(bits, x, out, scale)
    }

    /// One chunk of pass 2 on `isa`; `stream` asks for non-temporal stores (SIMD only).
    pub(super) fn run<T: Real>(isa: Isa, bits: &[u64], x: &[T], out: &mut [T], scale: T, stream: bool) {
        match isa.level() {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: an `Isa` of level Avx2 or Avx512 exists only when AVX2 and FMA were
            // detected on this CPU (`rng::Isa::new`): every feature these functions enable.
            Level::Avx2 | Level::Avx512 => unsafe {
                if stream {
                    chunk_stream_avx2(bits, x, out, scale)
                } else {
                    chunk_avx2(bits, x, out, scale)
                }
            },
            _ => chunk::<T, false>(bits, x, out, scale),
        }
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

    /// `apply` by the window-sum definition: `keep_mask`, then the scale.
    fn by_window_sums<T: Real>(db: &DropBlock, x: &[T]) -> Vec<T> {
        let (keep, kept) = db.keep_mask();
        let scale = if kept == 0 { T::zero() } else { T::of(x.len() as f64 / kept as f64) };
        x.iter().zip(&keep).map(|(&v, &k)| if k != 0 { v * scale } else { T::zero() }).collect()
    }

    fn bit_path_case<T: Real>(planes: usize, h: usize, w: usize, bs: usize, p: f64) {
        let db = DropBlock::new(planes, h, w, bs, p, 17, (1 << 33) + 5).unwrap();
        let x: Vec<T> = (0..planes * h * w).map(|i| T::of((i % 13) as f64 - 6.0)).collect();
        let want = by_window_sums(&db, &x);
        for isa in rng::available_isas() {
            let mut out = vec![T::of(9.0); x.len()];
            db.apply_with(isa, &x, &mut out).unwrap();
            assert_eq!(out, want, "{isa:?} planes={planes} {h}x{w} block {bs} p={p}");
        }
    }

    #[test]
    fn bit_mask_path_equals_the_window_sum_path() {
        // Maps up to 64 wide and high take the bit-mask path in `apply` (65 takes the
        // window sums); `keep_mask` is the window-sum definition. Widths around the
        // 8-word compares and the 64-bit rows, every block size up to 7, full-size
        // blocks, plane sizes that do not divide 64 (rows straddle mask words), and
        // p = 1 where gamma saturates (every valid position a centre).
        for &(h, w) in &[(1, 1), (5, 1), (1, 7), (12, 9), (7, 9), (13, 11), (9, 63), (3, 64), (64, 64), (65, 5), (6, 65), (32, 32)] {
            for bs in 1..=7.min(h).min(w) {
                for &p in &[0.1, 0.45, 1.0] {
                    bit_path_case::<f32>(3, h, w, bs, p);
                    bit_path_case::<f64>(2, h, w, bs, p);
                }
            }
        }
        bit_path_case::<f32>(2, 64, 64, 64, 0.5);
        bit_path_case::<f64>(3, 40, 63, 33, 0.9);
    }

    #[test]
    fn bit_mask_path_does_not_depend_on_thread_count() {
        // Enough units to go parallel; plane sizes 63 (tasks must round to 64 planes to
        // start on a mask word), 1024 and 143, the last task short.
        for &(h, w, bs) in &[(7usize, 9usize, 3usize), (32, 32, 5), (13, 11, 4)] {
            let planes = parallel::SERIAL_BELOW / (h * w) * 3 + 37;
            let db = DropBlock::new(planes, h, w, bs, 0.2, 3, 11).unwrap();
            let x: Vec<f32> = (0..planes * h * w).map(|i| (i % 7) as f32 + 0.5).collect();
            parallel::set_num_threads(1).unwrap();
            let want = by_window_sums(&db, &x);
            for threads in [1, 2, 7] {
                parallel::set_num_threads(threads).unwrap();
                for isa in rng::available_isas() {
                    let mut out = vec![0f32; x.len()];
                    db.apply_with(isa, &x, &mut out).unwrap();
                    assert!(out == want, "{isa:?} threads={threads} {h}x{w} block {bs}");
                }
            }
        }
        parallel::set_num_threads(2).unwrap();
    }

    #[test]
    fn streamed_output_is_the_same_at_every_alignment() {
        // Non-temporal stores need 32-byte-aligned groups: outputs that start 0..7
        // units past a boundary take a different head, body and tail each time.
        let planes = parallel::SERIAL_BELOW / 143 + 5;
        for &(h, w, bs) in &[(13usize, 11usize, 4usize), (32, 32, 5)] {
            let db = DropBlock::new(planes, h, w, bs, 0.2, 21, 6).unwrap();
            let n = planes * h * w;
            let x32: Vec<f32> = (0..n).map(|i| (i % 11) as f32 - 5.0).collect();
            let x64: Vec<f64> = x32.iter().map(|&v| v as f64).collect();
            let (want32, want64) = (by_window_sums(&db, &x32), by_window_sums(&db, &x64));
            for isa in rng::available_isas() {
                for shift in 0..8 {
                    let mut buf = vec![1f32; n + 8];
                    db.apply_bits(isa, &x32, &mut buf[shift..shift + n], true);
                    assert!(buf[shift..shift + n] == want32[..], "{isa:?} f32 shift {shift} {h}x{w}");
                    let mut buf = vec![1f64; n + 8];
                    db.apply_bits(isa, &x64, &mut buf[shift..shift + n], true);
                    assert!(buf[shift..shift + n] == want64[..], "{isa:?} f64 shift {shift} {h}x{w}");
                }
            }
        }
    }

    #[test]
    fn dropped_inf_and_nan_leave_exact_zeros() {
        let db = DropBlock::new(4, 16, 16, 3, 0.5, 2, 0).unwrap();
        let (keep, kept) = db.keep_mask();
        assert!(keep.contains(&0) && keep.contains(&1));
        let scale = keep.len() as f64 / kept as f64;
        let x: Vec<f64> = (0..keep.len()).map(|i| [f64::INFINITY, f64::NAN, -f64::INFINITY, 1.0][i % 4]).collect();
        for isa in rng::available_isas() {
            let mut out = vec![7.0; x.len()];
            db.apply_with(isa, &x, &mut out).unwrap();
            for ((&o, &k), &v) in out.iter().zip(&keep).zip(&x) {
                if k == 0 {
                    assert_eq!(o.to_bits(), 0, "{isa:?}: a dropped unit is +0.0");
                } else {
                    assert!(o == v * scale || (o.is_nan() && v.is_nan()), "{isa:?}: kept {v} became {o}");
                }
            }
        }
    }

    #[test]
    fn bad_block_size_is_an_error() {
        assert!(DropBlock::new(1, 4, 4, 5, 0.1, 0, 0).is_err());
        assert!(DropBlock::new(1, 4, 4, 0, 0.1, 0, 0).is_err());
        assert!(DropBlock::new(1, 4, 4, 2, 1.5, 0, 0).is_err());
    }
}
