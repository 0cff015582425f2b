//! Gaussian dropout (Srivastava et al. 2014, §10) and additive Gaussian noise.
//!
//! Element `i` of a call at offset `o` draws `z_i ~ N(0, 1)` by Box-Muller from the
//! words `o + 2i` and `o + 2i + 1`: `u = (w + 1/2) / 2^32` in (0, 1), and
//! `z = sqrt(-2 ln u1) cos(2 pi u2)` (computed in f64). Gaussian dropout multiplies by
//! `1 + sigma z` with `sigma = sqrt(p / (1 - p))`, so its noise has mean 1 and
//! variance `p / (1 - p)`, as Bernoulli dropout's `keep / (1 - p)` does; the
//! additive form adds `stddev z`. A call on `n` elements takes `2n` words.

use crate::error::check_same_len;
use crate::parallel;
use crate::rng::{self, Isa, BLOCK};
#[cfg(target_arch = "x86_64")]
use crate::rng::Level;
use crate::{Real, Result};

/// The standard normal variate of element `i` (words `offset + 2i`, `offset + 2i + 1`).
///
/// `ln` and `cos` are our own branch-free polynomials (a few ulp from the correctly
/// rounded values), so the variates do not depend on the platform's libm and the
/// loop vectorises.
#[inline(always)]
pub fn normal_of(w1: u32, w2: u32) -> f64 {
    let u1 = (w1 as f64 + 0.5) * (1.0 / 4_294_967_296.0);
    let u2 = (w2 as f64 + 0.5) * (1.0 / 4_294_967_296.0);
    (-2.0 * ln_unit(u1)).sqrt() * cos_two_pi(u2)
}

/// `1 / (2k + 1)`: the series of `atanh(s) / s` in `s^2`.
const ATANH_COEF: [f64; 11] = {
    let mut c = [0.0; 11];
    let mut k = 0;
    while k < 11 {
        c[k] = 1.0 / (2 * k + 1) as f64;
        k += 1;
    }
    c
};

/// `1 / ((2k + 1)(2k + 2))`: the ratios of consecutive terms of cosine's series.
const COS_COEF: [f64; 11] = {
    let mut c = [0.0; 11];
    let mut k = 0;
    while k < 11 {
        c[k] = 1.0 / ((2 * k + 1) * (2 * k + 2)) as f64;
        k += 1;
    }
    c
};

/// `ln(u)` for `u` in (0, 1), normal numbers: `u = m 2^e` with `m` in
/// [sqrt(1/2), sqrt(2)), `ln m = 2 atanh(s)`, `s = (m-1)/(m+1)`, `|s| < 0.172`, whose
/// series to `s^21` is exact to below 1e-16.
#[inline(always)]
fn ln_unit(u: f64) -> f64 {
    #[allow(clippy::excessive_precision)] // fdlibm's split of ln 2, digits as published
    const LN2_HI: f64 = 6.931_471_803_691_238_2e-1;
    const LN2_LO: f64 = 1.908_214_929_270_587_7e-10;
    let bits = u.to_bits();
    let mut e = ((bits >> 52) & 0x7ff) as i64 - 1023;
    let mut m = f64::from_bits((bits & 0x000f_ffff_ffff_ffff) | 0x3ff0_0000_0000_0000);
    let big = m > std::f64::consts::SQRT_2;
    m = if big { m * 0.5 } else { m };
    e += big as i64;
    let s = (m - 1.0) / (m + 1.0);
    let s2 = s * s;
    let mut poly = ATANH_COEF[10];
    for k in (0..10).rev() {
        poly = poly * s2 + ATANH_COEF[k];
    }
    let e = e as f64;
    e * LN2_HI + (e * LN2_LO + 2.0 * s * poly)
}

/// `cos(2 pi u)`: reduced to `x = 2 pi b`, `b` in [0, 1/4], by the symmetries of
/// cosine, then its Taylor series to `x^22` (error below 1e-17 on [0, pi/2]).
#[inline(always)]
fn cos_two_pi(u: f64) -> f64 {
    // cos(2 pi u) = cos(2 pi t) with t = |u - round(u)| <= 1/2. For u in (0, 1) that is
    // u or 1 - u (exact, Sterbenz), written without `round`, which has no vector
    // instruction (round half away from zero) and kept the loop scalar.
    debug_assert!(u > 0.0 && u < 1.0);
    let t = if u > 0.5 { 1.0 - u } else { u };
    let flip = t > 0.25;
    let b = if flip { 0.5 - t } else { t };
    let x = std::f64::consts::TAU * b;
    let x2 = x * x;
    let mut c = 1.0;
    for k in (0..11).rev() {
        // Horner on 1 - x^2/2! + x^4/4! - ...: c = 1 - x^2 c / ((2k+1)(2k+2))
        c = 1.0 - x2 * c * COS_COEF[k];
    }
    if flip {
        -c
    } else {
        c
    }
}

/// The normal variates of one block: `z[i]` from `words[2i]`, `words[2i + 1]`.
#[inline(always)]
fn normals_block(words: &[u32], z: &mut [f64]) {
    for (zi, pair) in z.iter_mut().zip(words.chunks_exact(2)) {
        *zi = normal_of(pair[0], pair[1]);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn normals_block_avx2(words: &[u32], z: &mut [f64]) {
    normals_block(words, z)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq,avx2,fma")]
fn normals_block_avx512(words: &[u32], z: &mut [f64]) {
    normals_block(words, z)
}

/// [`normals_block`] compiled for the best instruction set of this CPU.
fn normals(isa: Isa, words: &[u32], z: &mut [f64]) {
    match isa.level() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: an `Isa` of level Avx2 exists only when AVX2 and FMA were detected
        // (`rng::Isa::new`): the features `normals_block_avx2` enables.
        Level::Avx2 => unsafe { normals_block_avx2(words, z) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: an `Isa` of level Avx512 exists only when AVX-512F/BW/DQ, AVX2 and
        // FMA were detected (`rng::Isa::new`): a superset of what this function enables.
        Level::Avx512 => unsafe { normals_block_avx512(words, z) },
        _ => normals_block(words, z),
    }
}

/// `out[i] = f(x[i], z_i)` with `z_i` the i-th normal variate of the call.
fn normal_map<T: Real>(x: &[T], out: &mut [T], seed: u64, offset: u64, f: impl Fn(T, f64) -> T + Sync + Send) -> Result<()> {
    check_same_len("gaussian noise input and output lengths", x.len(), out.len())?;
    let isa = rng::isa();
    parallel::zip_chunks(x, out, |start, xc, oc| {
        let mut words = [0u32; 2 * BLOCK];
        let mut z = [0.0f64; BLOCK];
        for (k, (xb, ob)) in xc.chunks(BLOCK).zip(oc.chunks_mut(BLOCK)).enumerate() {
            let n = ob.len();
            rng::fill_words(seed, offset.wrapping_add(2 * (start + k * BLOCK) as u64), &mut words[..2 * n]);
            normals(isa, &words[..2 * n], &mut z[..n]);
            for ((o, &v), &zi) in ob.iter_mut().zip(xb).zip(&z[..n]) {
                *o = f(v, zi);
            }
        }
    });
    Ok(())
}

/// Gaussian dropout: `out = x * (1 + sigma z)`. Its backward is the same map on the
/// gradient (`dx = dy * (1 + sigma z)`), with the same `(seed, offset)`.
pub fn gaussian_dropout<T: Real>(x: &[T], out: &mut [T], sigma: f64, seed: u64, offset: u64) -> Result<()> {
    normal_map(x, out, seed, offset, |v, z| v * T::of(1.0 + sigma * z))
}

/// Additive noise: `out = x + stddev z` (its backward passes the gradient through).
pub fn gaussian_noise<T: Real>(x: &[T], out: &mut [T], stddev: f64, seed: u64, offset: u64) -> Result<()> {
    normal_map(x, out, seed, offset, |v, z| v + T::of(stddev * z))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polynomials_match_libm() {
        let mut worst_ln: f64 = 0.0;
        let mut worst_cos: f64 = 0.0;
        for k in 0..200_000u64 {
            let w = (k.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as u32;
            let u = (w as f64 + 0.5) / 4_294_967_296.0;
            worst_ln = worst_ln.max(((ln_unit(u) - u.ln()) / u.ln()).abs());
            worst_cos = worst_cos.max((cos_two_pi(u) - (std::f64::consts::TAU * u).cos()).abs());
        }
        assert!(worst_ln < 1e-15, "{worst_ln}");
        assert!(worst_cos < 1e-15, "{worst_cos}");
    }

    #[test]
    fn ln_unit_is_accurate_across_the_exponent_range() {
        // Every exponent a word can give (u >= 2^-33), both sides of the sqrt(2) split:
        // checks the exponent handling, not just the mantissa polynomial.
        for k in 1..=33 {
            let u = (-(k as f64)).exp2();
            assert!(((ln_unit(u) - u.ln()) / u.ln()).abs() < 1e-15, "2^-{k}");
            let v = u * 1.5; // m = 1.5 > sqrt(2): e goes up by one
            assert!(((ln_unit(v) - v.ln()) / v.ln()).abs() < 1e-15, "1.5 * 2^-{k}");
        }
    }

    #[test]
    fn matches_the_scalar_definition_for_any_thread_count() {
        let n = 3 * parallel::CHUNK + 11;
        let x: Vec<f64> = (0..n).map(|i| (i % 17) as f64 - 8.0).collect();
        let want: Vec<f64> = (0..n)
            .map(|i| x[i] * (1.0 + 0.5 * normal_of(rng::word(4, 10 + 2 * i as u64), rng::word(4, 11 + 2 * i as u64))))
            .collect();
        for threads in [1, 3] {
            parallel::set_num_threads(threads).unwrap();
            let mut out = vec![0.0; n];
            gaussian_dropout(&x, &mut out, 0.5, 4, 10).unwrap();
            assert_eq!(out, want);
        }
        parallel::set_num_threads(2).unwrap();
    }

    #[test]
    fn noise_has_the_right_moments() {
        let n = 400_000;
        let mut z = vec![0.0f64; n];
        gaussian_noise(&vec![0.0; n], &mut z, 1.0, 1, 0).unwrap();
        let mean = z.iter().sum::<f64>() / n as f64;
        let var = z.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n as f64;
        let kurt = z.iter().map(|v| (v - mean).powi(4)).sum::<f64>() / n as f64 / (var * var);
        // 6-sigma bounds of the sampling distributions of mean, variance and kurtosis.
        assert!(mean.abs() < 6.0 / (n as f64).sqrt(), "{mean}");
        assert!((var - 1.0).abs() < 6.0 * (2.0 / n as f64).sqrt(), "{var}");
        assert!((kurt - 3.0).abs() < 6.0 * (24.0 / n as f64).sqrt(), "{kurt}");
    }
}
