//! Philox4x32-10 (Salmon, Moraes, Dror & Shaw, "Parallel random numbers: as easy as
//! 1, 2, 3", SC 2011) and dropcore's word stream.
//!
//! One round maps counter `(c0, c1, c2, c3)` with key `(k0, k1)` to
//! `(hi(M1*c2) ^ c1 ^ k0, lo(M1*c2), hi(M0*c0) ^ c3 ^ k1, lo(M0*c0))`
//! with `M0 = 0xD2511F53`, `M1 = 0xCD9E8D57`; the key is bumped by the Weyl
//! constants `(0x9E3779B9, 0xBB67AE85)` between rounds; ten rounds.
//!
//! Word stream (SPEC §2): word `j` of `seed` is output word `j % 4` of
//! `philox4x32_10(counter = (b as u32, (b >> 32) as u32, 0, 0), key = (seed as u32, (seed >> 32) as u32))`
//! with `b = j / 4`. Every word is a pure function of `(seed, j)`.
//!
//! Element masks (contract v2, SPEC §2) read half-words: element `i` of a call whose
//! first element sits at half-word position `h` reads the 16-bit lane `u` of half-word
//! `h + i` (half-word `2j` is the low half of word `j`, `2j + 1` its high half). With
//! `T = round((1 - p) 2^32) = T_hi 2^16 + T_lo` it is kept iff `u < T_hi`, or
//! `u == T_hi` and the same lane `v` of the tie word is `< T_lo`; the tie word of
//! word `j` is the same Philox block with counter word 2 set to 1. That is exactly
//! the 32-bit comparison `u 2^16 + v < T`, so P(keep) = T / 2^32, while the tie word
//! is only computed for the one element in 65,536 with `u == T_hi`.
//!
//! [`fill_words`] is the bulk path: an AVX2 or AVX-512 kernel (chosen at run time)
//! that runs many Philox blocks side by side, and a scalar fallback that gives the
//! same bits.

pub const PHILOX_M0: u32 = 0xD251_1F53;
pub const PHILOX_M1: u32 = 0xCD9E_8D57;
pub const PHILOX_W0: u32 = 0x9E37_79B9;
pub const PHILOX_W1: u32 = 0xBB67_AE85;

/// Words produced per SIMD step (32 Philox blocks); kernels work in blocks of this
/// many elements.
pub const BLOCK: usize = 128;
/// Philox blocks per SIMD step.
const BLOCKS_PER_STEP: usize = BLOCK / 4;

#[inline(always)]
fn mulhilo(a: u32, b: u32) -> (u32, u32) {
    let p = (a as u64) * (b as u64);
    ((p >> 32) as u32, p as u32)
}

/// Philox4x32 with 10 rounds: the reference implementation every fast path must equal.
#[inline]
pub fn philox4x32_10(counter: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let [mut c0, mut c1, mut c2, mut c3] = counter;
    let [mut k0, mut k1] = key;
    for round in 0..10 {
        if round > 0 {
            k0 = k0.wrapping_add(PHILOX_W0);
            k1 = k1.wrapping_add(PHILOX_W1);
        }
        let (hi0, lo0) = mulhilo(PHILOX_M0, c0);
        let (hi1, lo1) = mulhilo(PHILOX_M1, c2);
        (c0, c1, c2, c3) = (hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0);
    }
    [c0, c1, c2, c3]
}

#[inline(always)]
fn key_of(seed: u64) -> [u32; 2] {
    [seed as u32, (seed >> 32) as u32]
}

/// The four words of Philox block `b` (words `4b .. 4b+4`) of `seed`.
#[inline(always)]
pub fn block(seed: u64, b: u64) -> [u32; 4] {
    philox4x32_10([b as u32, (b >> 32) as u32, 0, 0], key_of(seed))
}

/// Word `index` of the stream of `seed` (scalar; for tests and odd single words).
#[inline]
pub fn word(seed: u64, index: u64) -> u32 {
    block(seed, index / 4)[(index % 4) as usize]
}

/// The tie block of block `b`: the main block's counter with its third word set to 1.
#[inline(always)]
pub fn tie_block(seed: u64, b: u64) -> [u32; 4] {
    philox4x32_10([b as u32, (b >> 32) as u32, 1, 0], key_of(seed))
}

/// The tie word of word `index` (read only when an element's half-word equals `T_hi`).
#[inline]
pub fn tie_word(seed: u64, index: u64) -> u32 {
    tie_block(seed, index / 4)[(index % 4) as usize]
}

/// A half-word position in the word stream: half-word `2 * word + odd`, i.e. the low
/// (`odd == false`) or high half of word `word`. Element kernels start here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HalfPos {
    pub word: u64,
    pub odd: bool,
}

impl HalfPos {
    /// Half-word `2 * offset + phase` (`phase` 0 or 1: the bindings check it).
    #[inline]
    pub fn new(offset: u64, phase: u8) -> Self {
        debug_assert!(phase < 2, "phase is 0 or 1");
        Self { word: offset, odd: phase & 1 == 1 }
    }

    /// The position `n` half-words further on (the word index wraps like the stream).
    #[inline]
    pub fn advance(self, n: usize) -> Self {
        let h = self.odd as u64 + n as u64;
        Self { word: self.word.wrapping_add(h / 2), odd: h % 2 == 1 }
    }

    /// Words a call on `n` elements from here touches: `ceil((phase + n) / 2)`.
    #[inline]
    pub fn words_for(self, n: usize) -> usize {
        (self.odd as usize + n).div_ceil(2)
    }
}

/// The 16-bit lane of the main stream at `pos`.
#[inline]
pub fn half(seed: u64, pos: HalfPos) -> u16 {
    (word(seed, pos.word) >> (16 * pos.odd as u32)) as u16
}

/// The 16-bit lane of the tie stream at `pos`.
#[inline]
pub fn tie_half(seed: u64, pos: HalfPos) -> u16 {
    (tie_word(seed, pos.word) >> (16 * pos.odd as u32)) as u16
}

/// The element's 32-bit comparison key `u 2^16 + v` (both words computed; reference).
#[inline]
pub fn element_key(seed: u64, pos: HalfPos) -> u32 {
    ((half(seed, pos) as u32) << 16) | tie_half(seed, pos) as u32
}

/// Contract v2 keep decision of the element at `pos` for keep threshold `threshold`
/// (= [`keep_threshold`]`(p)`), by the definition: the scalar reference.
#[inline]
pub fn element_keep(seed: u64, pos: HalfPos, threshold: u64) -> bool {
    if threshold >= 1 << 32 {
        return true;
    }
    let (t_hi, t_lo) = ((threshold >> 16) as u16, (threshold & 0xffff) as u16);
    let u = half(seed, pos);
    u < t_hi || (u == t_hi && tie_half(seed, pos) < t_lo)
}

/// Keys of `keys.len()` elements from `pos` for a threshold `0 < t < 2^32`: `keys[i] < t`
/// iff element `i` is kept (contract v2). A key is `u 2^16`, plus the tie lane where
/// `u == T_hi` and `T_lo != 0` (the only elements the tie can decide).
pub fn fill_element_keys_with(isa: Isa, seed: u64, pos: HalfPos, t: u32, keys: &mut [u32]) {
    let mut pos = pos;
    let mut keys = keys;
    if pos.odd && !keys.is_empty() {
        keys[0] = element_key(seed, pos);
        keys = &mut keys[1..];
        pos = pos.advance(1);
    }
    let mut words = [0u32; BLOCK];
    for (k, kc) in keys.chunks_mut(2 * BLOCK).enumerate() {
        let n = kc.len();
        let w = &mut words[..n.div_ceil(2)];
        fill_words_with(isa, seed, pos.word.wrapping_add((k * BLOCK) as u64), w);
        for (pair, &wd) in kc.chunks_mut(2).zip(w.iter()) {
            pair[0] = wd << 16;
            if let Some(hi) = pair.get_mut(1) {
                *hi = wd & 0xffff_0000;
            }
        }
        let (t_hi, t_lo) = (t >> 16, t & 0xffff);
        if t_lo != 0 {
            for (i, key) in kc.iter_mut().enumerate() {
                if *key >> 16 == t_hi {
                    *key |= tie_half(seed, pos.advance(k * 2 * BLOCK + i)) as u32;
                }
            }
        }
    }
}

/// Keep threshold for drop probability `p`: an element is kept iff `word < T`, with
/// `T = round((1 - p) * 2^32)` computed in f64 (so `p = 0` keeps all, `p = 1` none).
#[inline]
pub fn keep_threshold(p: f64) -> u64 {
    ((1.0 - p) * 4_294_967_296.0).round() as u64
}

/// The instruction-set levels the bulk paths are written for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Level {
    /// Portable code; the reference every other path must equal bit for bit.
    Scalar,
    /// x86-64 AVX2 + FMA: eight Philox blocks per vector, several vectors interleaved.
    Avx2,
    /// x86-64 AVX-512 F/BW/DQ (with AVX2 + FMA): eight Philox blocks per vector, four
    /// vectors interleaved.
    Avx512,
}

impl Level {
    /// Whether this CPU has every feature the level's code enables.
    pub fn supported(self) -> bool {
        match self {
            Level::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Level::Avx2 => std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma"),
            #[cfg(target_arch = "x86_64")]
            Level::Avx512 => {
                Level::Avx2.supported()
                    && std::arch::is_x86_feature_detected!("avx512f")
                    && std::arch::is_x86_feature_detected!("avx512bw")
                    && std::arch::is_x86_feature_detected!("avx512dq")
            }
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }
}

/// An instruction-set level that this CPU supports. The only ways to get one are
/// [`Isa::new`] (which checks every feature the level's code enables, see
/// [`Level::supported`]), [`Isa::SCALAR`], [`isa`] and [`available_isas`]; so holding
/// an `Isa` proves the SIMD code it selects can run here, and the safe functions that
/// take one (`fill_words_with`, `dropout_forward_with`, ...) cannot be made to execute
/// an unsupported instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Isa(Level);

impl Isa {
    /// The portable path, available everywhere.
    pub const SCALAR: Isa = Isa(Level::Scalar);

    /// `level` if this CPU supports it, else `None`.
    pub fn new(level: Level) -> Option<Isa> {
        level.supported().then_some(Isa(level))
    }

    /// The level this value stands for.
    pub fn level(self) -> Level {
        self.0
    }

    /// "scalar", "avx2" or "avx512" (what `DROPCORE_SIMD` accepts and `simd_isa()` reports).
    pub fn name(self) -> &'static str {
        match self.0 {
            Level::Scalar => "scalar",
            Level::Avx2 => "avx2",
            Level::Avx512 => "avx512",
        }
    }
}

/// The best instruction set of this CPU, unless `DROPCORE_SIMD=off` (or `scalar`)
/// asks for the portable path, or `DROPCORE_SIMD=avx2` caps it at AVX2.
pub fn isa() -> Isa {
    static ISA: std::sync::OnceLock<Isa> = std::sync::OnceLock::new();
    *ISA.get_or_init(|| {
        let level = std::env::var("DROPCORE_SIMD").map(|v| v.trim().to_ascii_lowercase()).unwrap_or_default();
        if matches!(level.as_str(), "off" | "0" | "scalar" | "none") {
            return Isa::SCALAR;
        }
        let allowed: &[Level] = if level == "avx2" { &[Level::Avx2] } else { &[Level::Avx512, Level::Avx2] };
        allowed.iter().find_map(|&l| Isa::new(l)).unwrap_or(Isa::SCALAR)
    })
}

/// Every instruction set this CPU can run (tests and benchmarks compare them all).
pub fn available_isas() -> Vec<Isa> {
    [Level::Scalar, Level::Avx2, Level::Avx512].into_iter().filter_map(Isa::new).collect()
}

/// Fill `out` with words `offset .. offset + out.len()` of the stream of `seed`.
pub fn fill_words(seed: u64, offset: u64, out: &mut [u32]) {
    fill_words_with(isa(), seed, offset, out)
}

/// [`fill_words`] on an explicit instruction set (what the kernels and tests call).
pub fn fill_words_with(isa: Isa, seed: u64, offset: u64, out: &mut [u32]) {
    match isa.level() {
        Level::Scalar => fill_words_scalar(seed, offset, out),
        #[cfg(target_arch = "x86_64")]
        // SAFETY: an `Isa` of level Avx2 exists only if `Level::Avx2.supported()`
        // detected AVX2 and FMA on this CPU (`Isa::new`); `avx2::fill_words` enables AVX2.
        Level::Avx2 => unsafe { avx2::fill_words(seed, offset, out) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: an `Isa` of level Avx512 exists only if AVX-512F/BW/DQ, AVX2 and FMA
        // were detected (`Isa::new`); `avx512::fill_words` enables AVX-512F.
        Level::Avx512 => unsafe { avx512::fill_words(seed, offset, out) },
        #[cfg(not(target_arch = "x86_64"))]
        Level::Avx2 | Level::Avx512 => unreachable!("no SIMD Isa exists off x86-64"),
    }
}


/// The scalar fill: block at a time, with a partial block at each end.
pub fn fill_words_scalar(seed: u64, offset: u64, out: &mut [u32]) {
    let mut j = offset;
    let mut k = 0;
    while k < out.len() {
        let w = block(seed, j / 4);
        let lane = (j % 4) as usize;
        let take = (4 - lane).min(out.len() - k);
        out[k..k + take].copy_from_slice(&w[lane..lane + take]);
        k += take;
        j = j.wrapping_add(take as u64);
    }
}

/// Bulk fill over whole [`BLOCK`]-word steps, given a generator `step` of the
/// [`BLOCK`] words of blocks `b .. b + BLOCK/4`; a stream that does not start on a
/// block boundary takes one extra scalar block per step.
#[inline(always)]
fn fill_words_stepped(seed: u64, offset: u64, out: &mut [u32], mut step: impl FnMut(u64, &mut [u32; BLOCK])) {
    let skip = (offset % 4) as usize;
    let mut b = offset / 4;
    let mut buf = [0u32; BLOCK + 4];
    for dst in out.chunks_mut(BLOCK) {
        if skip == 0 && dst.len() == BLOCK {
            step(b, dst.try_into().expect("chunk of BLOCK words"));
        } else {
            let (head, tail) = buf.split_at_mut(BLOCK);
            step(b, head.try_into().expect("BLOCK words"));
            if skip + dst.len() > BLOCK {
                tail.copy_from_slice(&block(seed, b.wrapping_add(BLOCKS_PER_STEP as u64)));
            }
            dst.copy_from_slice(&buf[skip..skip + dst.len()]);
        }
        b = b.wrapping_add(BLOCKS_PER_STEP as u64);
    }
}

/// The ten round keys of `seed`: `(k0, k1)` bumped by the Weyl constants each round.
#[cfg(target_arch = "x86_64")]
fn round_keys(seed: u64) -> ([u32; 10], [u32; 10]) {
    let (mut k0, mut k1) = ([seed as u32; 10], [(seed >> 32) as u32; 10]);
    for r in 1..10 {
        k0[r] = k0[r - 1].wrapping_add(PHILOX_W0);
        k1[r] = k1[r - 1].wrapping_add(PHILOX_W1);
    }
    (k0, k1)
}

/// The constants the SIMD `Keys` fold rounds 1 and 2 into, for the blocks whose counter
/// high word is `hi` (counter `(lo, hi, 0, 0)`): round 0 leaves `c0 = hi ^ k0` in every
/// block, so round 1's product `M0 (hi ^ k0)` is the same for all. Returns
/// `(hi(product) ^ k1 of round 1, lo(product) ^ k1 of round 2)`.
#[cfg(target_arch = "x86_64")]
fn folded_constants(seed: u64, hi: u32) -> (u32, u32) {
    let (k0, k1) = (seed as u32, (seed >> 32) as u32);
    let (ha, la) = mulhilo(PHILOX_M0, hi ^ k0);
    (ha ^ k1.wrapping_add(PHILOX_W1), la ^ k1.wrapping_add(PHILOX_W1.wrapping_mul(2)))
}

#[cfg(target_arch = "x86_64")]
pub(crate) mod avx2 {
    //! Philox4x32-10 on AVX2 with one block per 64-bit lane: vector `c0` holds word 0
    //! of four blocks in its even 32-bit lanes (the odd lanes are don't-care), and so
    //! on for `c1..c3`. `_mm256_mul_epu32` reads exactly the even lanes and leaves the
    //! full 64-bit product in place: its low half is already where the next round
    //! wants it, and one `vpshufd` brings the high half down. A round is then 2
    //! multiplies, 2 shuffles and 4 XORs per four blocks and needs no shifts or blends.
    //! That matters most on cores that split 256-bit operations into two 128-bit
    //! halves and run `vpmuludq` on one pipe only (AMD Zen 1/2). Two independent groups
    //! (eight blocks, eight state registers) are interleaved to hide the multiply
    //! latency; three groups make the state registers spill.
    //!
    //! Two more savings, both exact:
    //! - The first two rounds are mostly constant. A block's counter is `(lo, hi, 0, 0)`
    //!   and every block of a step shares `hi` (unless `lo` wraps inside the step: then
    //!   the plain ten rounds run). With `c2 = 0` round 0 has no second product and
    //!   leaves `c0 = hi ^ k0`, the same for every block, so round 1's first product is
    //!   a per-`hi` constant too ([`Keys`] caches it). Rounds 0-2 cost 4 multiplies,
    //!   4 shuffles and 6 XORs per group instead of 6, 6 and 12.
    //! - A group's 64-bit lanes hold its blocks in the order 0, 2, 1, 3, so the in-lane
    //!   transpose (shuffle, blend, 64-bit unpack) already yields two rows of eight
    //!   words in stream order, `[block 0 | block 1]` and `[block 2 | block 3]`: no
    //!   cross-lane `vperm2i128` (8 micro-ops on Zen 1). A row is 16 half-words, i.e.
    //!   the keys of 16 consecutive elements, which the fused dropout kernel compares
    //!   straight from the register.

    use super::*;
    use std::arch::x86_64::*;

    /// Independent groups of four blocks per step.
    const GROUPS: usize = 2;
    /// Philox blocks per step.
    pub const STEP_BLOCKS: usize = 4 * GROUPS;
    /// Rows of eight words (sixteen half-words) per step.
    pub const ROWS: usize = 2 * GROUPS;
    /// `vpshufd` selector moving each 64-bit lane's high 32 bits into its low half.
    const HIGH_DOWN: i32 = 0b11_11_01_01;
    /// `vpshufd` selector copying each 64-bit lane's low 32 bits into its high half.
    const LOW_UP: i32 = 0b10_10_00_00;

    /// The broadcast round keys of one seed, and the per-`hi` constants of rounds 1-2.
    #[derive(Clone, Copy)]
    pub struct Keys {
        k0: [__m256i; 10],
        k1: [__m256i; 10],
        seed: u64,
        /// The counter high word the two constants below belong to.
        hi: u32,
        /// `hi(M0 * (hi ^ k0)) ^ k1` of round 1: XORed into `c2` there.
        c12: __m256i,
        /// `lo(M0 * (hi ^ k0)) ^ k1` of round 2: round 2's `c3 ^ k1`.
        x3: __m256i,
    }

    impl Keys {
        #[inline]
        #[target_feature(enable = "avx2")]
        pub fn new(seed: u64) -> Self {
            let zero = _mm256_setzero_si256();
            let (k0, k1) = round_keys(seed);
            let (k0, k1) = (k0.map(|k| _mm256_set1_epi32(k as i32)), k1.map(|k| _mm256_set1_epi32(k as i32)));
            let mut keys = Self { k0, k1, seed, hi: 0, c12: zero, x3: zero };
            keys.set_hi(0);
            keys
        }

        #[inline]
        #[target_feature(enable = "avx2")]
        fn set_hi(&mut self, hi: u32) {
            let (c12, x3) = folded_constants(self.seed, hi);
            self.c12 = _mm256_set1_epi32(c12 as i32);
            self.x3 = _mm256_set1_epi32(x3 as i32);
            self.hi = hi;
        }

        /// Words `8q .. 8q + 8` of blocks `first_block .. first_block + STEP_BLOCKS` as
        /// row `q`, in stream order (16-bit lane `i` of row `q` is half-word `16q + i`).
        #[inline]
        #[target_feature(enable = "avx2")]
        pub fn rows(&mut self, first_block: u64) -> [__m256i; ROWS] {
            // SAFETY: this function enables AVX2.
            unsafe { self.rows_inline(first_block) }
        }

        /// [`Keys::rows`], always inlined (the word fill calls it four times per step,
        /// more than the inliner accepts for a `#[target_feature]` function, and an
        /// out-of-line call costs a `vzeroupper` and a round trip through memory).
        ///
        /// # Safety
        /// AVX2 is available.
        #[inline(always)]
        unsafe fn rows_inline(&mut self, first_block: u64) -> [__m256i; ROWS] {
            let zero = _mm256_setzero_si256();
            let (mut c0, mut c1, mut c2, mut c3) = ([zero; GROUPS], [zero; GROUPS], [zero; GROUPS], [zero; GROUPS]);
            let m0 = _mm256_set1_epi32(PHILOX_M0 as i32);
            let m1 = _mm256_set1_epi32(PHILOX_M1 as i32);
            let first_round;
            if (first_block as u32) > u32::MAX - (STEP_BLOCKS as u32 - 1) {
                // The low counter word wraps inside this step: blocks differ in `hi`,
                // so run all ten rounds from the counters.
                for g in 0..GROUPS {
                    let b = |k: usize| first_block.wrapping_add((4 * g + k) as u64);
                    let (lo, hi) = ([b(0), b(2), b(1), b(3)].map(|v| v as u32 as i64), [b(0), b(2), b(1), b(3)].map(|v| (v >> 32) as i64));
                    c0[g] = _mm256_setr_epi64x(lo[0], lo[1], lo[2], lo[3]);
                    c1[g] = _mm256_setr_epi64x(hi[0], hi[1], hi[2], hi[3]);
                }
                first_round = 0;
            } else {
                let hi = (first_block >> 32) as u32;
                if hi != self.hi {
                    self.set_hi(hi);
                }
                let lo = _mm256_add_epi32(_mm256_set1_epi32(first_block as u32 as i32), _mm256_setr_epi32(0, 0, 2, 0, 1, 0, 3, 0));
                for g in 0..GROUPS {
                    // Round 0: c2 = 0, so only M0 * lo; c0 becomes hi ^ k0 for every block.
                    let p0 = _mm256_mul_epu32(_mm256_add_epi32(lo, _mm256_set1_epi32(4 * g as i32)), m0);
                    let c2r0 = _mm256_xor_si256(_mm256_shuffle_epi32::<HIGH_DOWN>(p0), self.k1[0]);
                    // Round 1: c1 = 0; M0 * (hi ^ k0) is the constant folded into c12 and x3.
                    let p1 = _mm256_mul_epu32(c2r0, m1);
                    let c0r1 = _mm256_xor_si256(_mm256_shuffle_epi32::<HIGH_DOWN>(p1), self.k0[1]);
                    let c2r1 = _mm256_xor_si256(p0, self.c12);
                    // Round 2: c3 ^ k1 is the constant x3.
                    let q0 = _mm256_mul_epu32(c0r1, m0);
                    let q1 = _mm256_mul_epu32(c2r1, m1);
                    c0[g] = _mm256_xor_si256(_mm256_shuffle_epi32::<HIGH_DOWN>(q1), _mm256_xor_si256(p1, self.k0[2]));
                    c1[g] = q1;
                    c2[g] = _mm256_xor_si256(_mm256_shuffle_epi32::<HIGH_DOWN>(q0), self.x3);
                    c3[g] = q0;
                }
                first_round = 3;
            }
            for round in first_round..10 {
                let (vk0, vk1) = (self.k0[round], self.k1[round]);
                for g in 0..GROUPS {
                    let p0 = _mm256_mul_epu32(c0[g], m0); // (lo, hi) of M0 * c0 per lane
                    let p1 = _mm256_mul_epu32(c2[g], m1); // (lo, hi) of M1 * c2
                    let x1 = _mm256_xor_si256(c1[g], vk0); // off the multiply's critical path
                    let x3 = _mm256_xor_si256(c3[g], vk1);
                    c0[g] = _mm256_xor_si256(_mm256_shuffle_epi32::<HIGH_DOWN>(p1), x1);
                    c1[g] = p1;
                    c2[g] = _mm256_xor_si256(_mm256_shuffle_epi32::<HIGH_DOWN>(p0), x3);
                    c3[g] = p0;
                }
            }
            let mut rows = [zero; ROWS];
            for g in 0..GROUPS {
                // Words 0/1 and 2/3 of each block side by side, then whole blocks; lanes
                // hold blocks 0, 2, 1, 3, so the 64-bit unpacks give stream order.
                let w01 = _mm256_blend_epi32::<0b1010_1010>(c0[g], _mm256_shuffle_epi32::<LOW_UP>(c1[g]));
                let w23 = _mm256_blend_epi32::<0b1010_1010>(c2[g], _mm256_shuffle_epi32::<LOW_UP>(c3[g]));
                rows[2 * g] = _mm256_unpacklo_epi64(w01, w23); // blocks 0 | 1 of the group
                rows[2 * g + 1] = _mm256_unpackhi_epi64(w01, w23); // blocks 2 | 3
            }
            rows
        }
    }

    /// The [`BLOCK`] words of blocks `first_block ..` in stream order.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn step(keys: &mut Keys, first_block: u64, out: &mut [u32; BLOCK]) {
        for (h, dst) in out.chunks_exact_mut(8 * ROWS).enumerate() {
            // SAFETY: this function enables AVX2.
            let rows = unsafe { keys.rows_inline(first_block.wrapping_add((h * STEP_BLOCKS) as u64)) };
            for (q, v) in rows.iter().enumerate() {
                // SAFETY: row q covers words 8q .. 8q + 8 <= 8 * ROWS of `dst`.
                unsafe { _mm256_storeu_si256(dst.as_mut_ptr().add(8 * q) as *mut __m256i, *v) };
            }
        }
    }

    /// AVX2 [`super::fill_words`].
    #[target_feature(enable = "avx2")]
    pub fn fill_words(seed: u64, offset: u64, out: &mut [u32]) {
        let mut keys = Keys::new(seed);
        fill_words_stepped(seed, offset, out, |b, dst| step(&mut keys, b, dst));
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) mod avx512 {
    //! Philox4x32-10 on AVX-512F: [`Keys`] runs sixteen blocks per step, one per
    //! 64-bit lane of four 512-bit vectors per word, two groups interleaved; a
    //! ternary-logic op does each round's three-way XOR.

    use super::*;
    use std::arch::x86_64::*;

    const XOR3: i32 = 0x96;

    /// Independent groups of eight blocks per [`Keys::rows`] step.
    const KEY_GROUPS: usize = 4;
    /// Philox blocks per [`Keys::rows`] step.
    pub const STEP_BLOCKS: usize = 8 * KEY_GROUPS;
    /// Rows of sixteen words (32 half-words) per step.
    pub const ROWS: usize = 2 * KEY_GROUPS;
    /// `vpshufd` selector moving each 64-bit lane's high 32 bits into its low half.
    const HIGH_DOWN: _MM_PERM_ENUM = 0b11_11_01_01;
    /// The low 32-bit half of every 64-bit lane.
    const LOW_HALVES: __mmask16 = 0x5555;

    /// [`avx2::Keys`](super::avx2::Keys) on 512-bit vectors, for the fused kernels: one
    /// block per 64-bit lane (`_mm512_mul_epu32` reads the even 32-bit lanes and leaves
    /// the full product in place), rounds 0-2 folded into per-`hi` constants, and the
    /// blocks of a group in the lane order 0, 4, 1, 5, 2, 6, 3, 7, so the in-lane
    /// transpose (shuffle, blend, 64-bit unpack) yields two rows of sixteen words in
    /// stream order, blocks 0-3 and 4-7, with no cross-lane shuffle. A row is 32
    /// half-words: the keys of 32 consecutive elements.
    #[derive(Clone, Copy)]
    pub struct Keys {
        k0: [__m512i; 10],
        k1: [__m512i; 10],
        seed: u64,
        /// The counter high word the two constants below belong to.
        hi: u32,
        /// `hi(M0 * (hi ^ k0)) ^ k1` of round 1: XORed into `c2` there.
        c12: __m512i,
        /// `lo(M0 * (hi ^ k0)) ^ k1` of round 2: round 2's `c3 ^ k1`.
        x3: __m512i,
    }

    impl Keys {
        #[inline]
        #[target_feature(enable = "avx512f")]
        pub fn new(seed: u64) -> Self {
            let zero = _mm512_setzero_si512();
            let (k0, k1) = round_keys(seed);
            let (k0, k1) = (k0.map(|k| _mm512_set1_epi32(k as i32)), k1.map(|k| _mm512_set1_epi32(k as i32)));
            let mut keys = Self { k0, k1, seed, hi: 0, c12: zero, x3: zero };
            keys.set_hi(0);
            keys
        }

        #[inline]
        #[target_feature(enable = "avx512f")]
        fn set_hi(&mut self, hi: u32) {
            let (c12, x3) = folded_constants(self.seed, hi);
            self.c12 = _mm512_set1_epi32(c12 as i32);
            self.x3 = _mm512_set1_epi32(x3 as i32);
            self.hi = hi;
        }

        /// Words `16q .. 16q + 16` of blocks `first_block .. first_block + STEP_BLOCKS`
        /// as row `q`, in stream order (16-bit lane `i` of row `q` is half-word `32q + i`).
        #[inline]
        #[target_feature(enable = "avx512f")]
        pub fn rows(&mut self, first_block: u64) -> [__m512i; ROWS] {
            // SAFETY: this function enables AVX-512F.
            unsafe { self.rows_inline(first_block) }
        }

        /// [`Keys::rows`], always inlined (into the fused kernels' hot loops).
        ///
        /// # Safety
        /// AVX-512F is available.
        #[inline(always)]
        pub unsafe fn rows_inline(&mut self, first_block: u64) -> [__m512i; ROWS] {
            let zero = _mm512_setzero_si512();
            let (mut c0, mut c1, mut c2, mut c3) =
                ([zero; KEY_GROUPS], [zero; KEY_GROUPS], [zero; KEY_GROUPS], [zero; KEY_GROUPS]);
            let m0 = _mm512_set1_epi32(PHILOX_M0 as i32);
            let m1 = _mm512_set1_epi32(PHILOX_M1 as i32);
            // Block (within a group) held by each 64-bit lane.
            const ORDER: [u64; 8] = [0, 4, 1, 5, 2, 6, 3, 7];
            let first_round;
            if (first_block as u32) > u32::MAX - (STEP_BLOCKS as u32 - 1) {
                // The low counter word wraps inside this step: blocks differ in `hi`,
                // so run all ten rounds from the counters.
                for g in 0..KEY_GROUPS {
                    let b = ORDER.map(|k| first_block.wrapping_add(8 * g as u64 + k));
                    let (lo, hi) = (b.map(|v| v as u32 as i64), b.map(|v| (v >> 32) as i64));
                    c0[g] = _mm512_setr_epi64(lo[0], lo[1], lo[2], lo[3], lo[4], lo[5], lo[6], lo[7]);
                    c1[g] = _mm512_setr_epi64(hi[0], hi[1], hi[2], hi[3], hi[4], hi[5], hi[6], hi[7]);
                }
                first_round = 0;
            } else {
                let hi = (first_block >> 32) as u32;
                if hi != self.hi {
                    self.set_hi(hi);
                }
                let lanes = _mm512_setr_epi32(0, 0, 4, 0, 1, 0, 5, 0, 2, 0, 6, 0, 3, 0, 7, 0);
                let lo = _mm512_add_epi32(_mm512_set1_epi32(first_block as u32 as i32), lanes);
                for g in 0..KEY_GROUPS {
                    // Round 0: c2 = 0, so only M0 * lo; c0 becomes hi ^ k0 for every block.
                    let p0 = _mm512_mul_epu32(_mm512_add_epi32(lo, _mm512_set1_epi32(8 * g as i32)), m0);
                    let c2r0 = _mm512_xor_si512(_mm512_shuffle_epi32::<HIGH_DOWN>(p0), self.k1[0]);
                    // Round 1: c1 = 0; M0 * (hi ^ k0) is the constant folded into c12 and x3.
                    let p1 = _mm512_mul_epu32(c2r0, m1);
                    let c0r1 = _mm512_xor_si512(_mm512_shuffle_epi32::<HIGH_DOWN>(p1), self.k0[1]);
                    let c2r1 = _mm512_xor_si512(p0, self.c12);
                    // Round 2: c3 ^ k1 is the constant x3.
                    let q0 = _mm512_mul_epu32(c0r1, m0);
                    let q1 = _mm512_mul_epu32(c2r1, m1);
                    c0[g] = _mm512_ternarylogic_epi32::<XOR3>(_mm512_shuffle_epi32::<HIGH_DOWN>(q1), p1, self.k0[2]);
                    c1[g] = q1;
                    c2[g] = _mm512_xor_si512(_mm512_shuffle_epi32::<HIGH_DOWN>(q0), self.x3);
                    c3[g] = q0;
                }
                first_round = 3;
            }
            for round in first_round..9 {
                let (vk0, vk1) = (self.k0[round], self.k1[round]);
                for g in 0..KEY_GROUPS {
                    let p0 = _mm512_mul_epu32(c0[g], m0); // (lo, hi) of M0 * c0 per lane
                    let p1 = _mm512_mul_epu32(c2[g], m1); // (lo, hi) of M1 * c2
                    c0[g] = _mm512_ternarylogic_epi32::<XOR3>(_mm512_shuffle_epi32::<HIGH_DOWN>(p1), c1[g], vk0);
                    c1[g] = p1;
                    c2[g] = _mm512_ternarylogic_epi32::<XOR3>(_mm512_shuffle_epi32::<HIGH_DOWN>(p0), c3[g], vk1);
                    c3[g] = p0;
                }
            }
            // Round 9 leaves each block's words side by side: rotating a product by 32
            // bits puts `hi` in the low half and `lo` (the next word) in the high half,
            // and an XOR masked to the low halves finishes the word there. Then the
            // 64-bit unpacks give whole blocks; lanes hold blocks 0, 4, 1, 5, 2, 6, 3, 7,
            // so rows come out in stream order.
            let (vk0, vk1) = (self.k0[9], self.k1[9]);
            let mut rows = [zero; ROWS];
            for g in 0..KEY_GROUPS {
                let p0 = _mm512_mul_epu32(c0[g], m0);
                let p1 = _mm512_mul_epu32(c2[g], m1);
                let w01 = _mm512_mask_ternarylogic_epi32::<XOR3>(_mm512_ror_epi64::<32>(p1), LOW_HALVES, c1[g], vk0);
                let w23 = _mm512_mask_ternarylogic_epi32::<XOR3>(_mm512_ror_epi64::<32>(p0), LOW_HALVES, c3[g], vk1);
                rows[2 * g] = _mm512_unpacklo_epi64(w01, w23); // blocks 0-3 of the group
                rows[2 * g + 1] = _mm512_unpackhi_epi64(w01, w23); // blocks 4-7
            }
            rows
        }
    }

    /// The [`BLOCK`] words of blocks `first_block ..` in stream order.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn step(keys: &mut Keys, first_block: u64, out: &mut [u32; BLOCK]) {
        for (h, dst) in out.chunks_exact_mut(16 * ROWS).enumerate() {
            // SAFETY: this function enables AVX-512F.
            let rows = unsafe { keys.rows_inline(first_block.wrapping_add((h * STEP_BLOCKS) as u64)) };
            for (q, v) in rows.iter().enumerate() {
                // SAFETY: row q covers words 16q .. 16q + 16 <= 16 * ROWS of `dst`.
                unsafe { _mm512_storeu_si512(dst.as_mut_ptr().add(16 * q) as *mut _, *v) };
            }
        }
    }

    /// AVX-512 [`super::fill_words`].
    #[target_feature(enable = "avx512f")]
    pub fn fill_words(seed: u64, offset: u64, out: &mut [u32]) {
        let mut keys = Keys::new(seed);
        fill_words_stepped(seed, offset, out, |b, dst| step(&mut keys, b, dst));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_answer_vectors_random123() {
        assert_eq!(philox4x32_10([0; 4], [0; 2]), [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]);
        assert_eq!(
            philox4x32_10([u32::MAX; 4], [u32::MAX; 2]),
            [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd]
        );
        // Random123's third vector (pi digits).
        assert_eq!(
            philox4x32_10([0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344], [0xa4093822, 0x299f31d0]),
            [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1]
        );
    }

    #[test]
    fn word_stream_layout() {
        let seed = 0x0123_4567_89ab_cdef_u64;
        let b = (1u64 << 32) + 5; // a block index whose high half is non-zero
        let w = philox4x32_10([b as u32, (b >> 32) as u32, 0, 0], [seed as u32, (seed >> 32) as u32]);
        for (lane, &want) in w.iter().enumerate() {
            assert_eq!(word(seed, 4 * b + lane as u64), want);
        }
    }

    fn reference(seed: u64, offset: u64, n: usize) -> Vec<u32> {
        (0..n as u64).map(|k| word(seed, offset.wrapping_add(k))).collect()
    }

    #[test]
    fn every_path_equals_the_scalar_word_bit_for_bit() {
        for isa in available_isas() {
            for &(seed, offset, n) in &[
                (0u64, 0u64, 1000usize),
                (42, 1, 333),
                (7, 3, 64),
                (u64::MAX, 4 * ((1u64 << 32) - 7) + 2, 301),
                (3, 4 * ((1u64 << 32) - 40), 700), // counter carries into the high word
                (99, 61, 1),
                (5, 0, 0),
            ] {
                let mut out = vec![0u32; n];
                fill_words_with(isa, seed, offset, &mut out);
                assert_eq!(out, reference(seed, offset, n), "{isa:?} seed={seed} offset={offset} n={n}");
            }
        }
    }

    #[test]
    fn tie_words_use_counter_word_two() {
        let seed = 0xdead_beef_0000_0007_u64;
        let b = (1u64 << 32) + 9;
        let w = philox4x32_10([b as u32, (b >> 32) as u32, 1, 0], [seed as u32, (seed >> 32) as u32]);
        for (lane, &want) in w.iter().enumerate() {
            assert_eq!(tie_word(seed, 4 * b + lane as u64), want);
            assert_ne!(tie_word(seed, 4 * b + lane as u64), word(seed, 4 * b + lane as u64));
        }
        let pos = HalfPos::new(4 * b + 2, 1);
        assert_eq!(half(seed, pos), (word(seed, 4 * b + 2) >> 16) as u16);
        assert_eq!(half(seed, HalfPos::new(4 * b + 2, 0)), word(seed, 4 * b + 2) as u16);
        assert_eq!(tie_half(seed, pos), (w[2] >> 16) as u16);
    }

    #[test]
    fn element_keys_compare_like_the_full_32_bit_key_on_every_path() {
        let seed = 13;
        for phase in [0u8, 1] {
            let start = HalfPos::new(1001, phase);
            let n = 2 * BLOCK * 2 + 5;
            let full: Vec<u32> = (0..n).map(|i| element_key(seed, start.advance(i))).collect();
            // Thresholds whose T_hi is some element's lane (forced ties), T_lo on both
            // sides of its tie lane, plus ordinary ones and T_lo = 0.
            let mut ts = vec![1u32 << 31, 0x4000_0001, 1, u32::MAX];
            for &i in &[0usize, 1, 2 * BLOCK, n - 1] {
                let k = full[i];
                ts.extend([k, k.wrapping_add(1), k & 0xffff_0000, (k & 0xffff_0000) | 0xffff]);
            }
            for &t in ts.iter().filter(|&&t| t != 0) {
                for isa in available_isas() {
                    let mut keys = vec![0u32; n];
                    fill_element_keys_with(isa, seed, start, t, &mut keys);
                    for i in 0..n {
                        assert_eq!(keys[i] < t, full[i] < t, "{isa:?} phase={phase} t={t:#x} i={i}");
                        assert_eq!(keys[i] < t, element_keep(seed, start.advance(i), t as u64));
                    }
                }
            }
        }
    }

    #[test]
    fn an_isa_exists_only_for_a_supported_level() {
        for level in [Level::Scalar, Level::Avx2, Level::Avx512] {
            assert_eq!(Isa::new(level).is_some(), level.supported());
            assert_eq!(available_isas().iter().any(|i| i.level() == level), level.supported());
        }
        assert!(available_isas().contains(&isa()));
        assert_eq!(Isa::new(Level::Scalar), Some(Isa::SCALAR));
        #[cfg(target_arch = "x86_64")]
        {
            // Every feature a level's code enables is part of its check.
            if Level::Avx2.supported() {
                assert!(std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma"));
            }
            if Level::Avx512.supported() {
                for ok in [
                    std::arch::is_x86_feature_detected!("avx512f"),
                    std::arch::is_x86_feature_detected!("avx512bw"),
                    std::arch::is_x86_feature_detected!("avx512dq"),
                    std::arch::is_x86_feature_detected!("avx2"),
                    std::arch::is_x86_feature_detected!("fma"),
                ] {
                    assert!(ok);
                }
            }
        }
    }

    #[test]
    fn keep_threshold_edges() {
        assert_eq!(keep_threshold(0.0), 1u64 << 32);
        assert_eq!(keep_threshold(1.0), 0);
        assert_eq!(keep_threshold(0.5), 1u64 << 31);
        assert_eq!(keep_threshold(0.25), 3u64 << 30);
    }
}
