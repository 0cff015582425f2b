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
use crate::rng::{self, BLOCK};
use crate::{Real, Result};

/// The standard normal variate of element `i` (words `offset + 2i`, `offset + 2i + 1`).
#[inline]
pub fn normal_of(w1: u32, w2: u32) -> f64 {
    let u1 = (w1 as f64 + 0.5) * (1.0 / 4_294_967_296.0);
    let u2 = (w2 as f64 + 0.5) * (1.0 / 4_294_967_296.0);
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// `out[i] = f(x[i], z_i)` with `z_i` the i-th normal variate of the call.
fn normal_map<T: Real>(x: &[T], out: &mut [T], seed: u64, offset: u64, f: impl Fn(T, f64) -> T + Sync + Send) -> Result<()> {
    check_same_len("gaussian noise input and output lengths", x.len(), out.len())?;
    parallel::zip_chunks(x, out, |start, xc, oc| {
        let mut words = [0u32; 2 * BLOCK];
        for (k, (xb, ob)) in xc.chunks(BLOCK).zip(oc.chunks_mut(BLOCK)).enumerate() {
            let w = &mut words[..2 * ob.len()];
            rng::fill_words(seed, offset.wrapping_add(2 * (start + k * BLOCK) as u64), w);
            for ((o, &v), pair) in ob.iter_mut().zip(xb).zip(w.chunks_exact(2)) {
                *o = f(v, normal_of(pair[0], pair[1]));
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
