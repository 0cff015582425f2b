//! Binding of the RNG, the thread pool and element dropout.

use numpy::{PyArrayDyn, PyArrayMethods};
use pyo3::exceptions::{PyOverflowError, PyValueError};
use pyo3::prelude::*;

use super::{dispatch_float, float_array, is_writeable, map_into, new_array, require_contiguous, Elem};
use crate::dropout::{dropout_forward, dropout_forward_inplace, DropoutRule};
use crate::rng::HalfPos;
use crate::{parallel, rng};

/// Words `offset .. offset + n` of the Philox stream of `seed`, as uint32.
/// `OverflowError` if the range runs past word 2^64 - 1, `MemoryError` if `n` words do
/// not fit in memory (the array is allocated before any word is computed).
#[pyfunction]
fn philox_words<'py>(py: Python<'py>, seed: u64, offset: u64, n: usize) -> PyResult<Bound<'py, PyArrayDyn<u32>>> {
    if (n as u128) > (1u128 << 64) - offset as u128 {
        return Err(PyOverflowError::new_err(format!(
            "words {offset} .. {offset} + {n} run past the end of the Philox stream (2**64 words)"
        )));
    }
    let out = new_array::<u32>(py, &[n])?; // `fill_words` writes every word
    {
        let mut rw = out.try_readwrite().map_err(|e| PyValueError::new_err(e.to_string()))?;
        let words = rw.as_slice_mut()?;
        py.detach(|| rng::fill_words(seed, offset, words));
    }
    Ok(out)
}

/// One Philox4x32-10 block: `counter` (4 words) under `key` (2 words).
#[pyfunction]
fn philox4x32_10(counter: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    rng::philox4x32_10(counter, key)
}

/// Dropout whose element `i` reads half-word `2 * offset + phase + i` of `seed` (SPEC
/// §2, contract v2). Returns a new array; or `x` itself when
/// `inplace` (then `x` must be writeable); or `out`, a writeable C-contiguous array of
/// `x`'s dtype and shape that does not overlap `x`, when given.
#[pyfunction]
#[pyo3(signature = (x, p, seed, offset, inverted = true, inplace = false, out = None, phase = 0))]
#[allow(clippy::too_many_arguments)]
fn dropout<'py>(
    x: &Bound<'py, PyAny>,
    p: f64,
    seed: u64,
    offset: u64,
    inverted: bool,
    inplace: bool,
    out: Option<&Bound<'py, PyAny>>,
    phase: u8,
) -> PyResult<Bound<'py, PyAny>> {
    let rule = DropoutRule::new(p, inverted)?;
    let start = half_pos(offset, phase)?;
    dispatch_float!(float_array(x, "input")?, |a| dropout_typed(a, rule, seed, start, inplace, out))
}

/// The start `2 * offset + phase` of an element call, or a `ValueError` for a bad phase.
pub(crate) fn half_pos(offset: u64, phase: u8) -> PyResult<HalfPos> {
    if phase > 1 {
        return Err(PyValueError::new_err(format!("phase must be 0 or 1, but got {phase}")));
    }
    Ok(HalfPos::new(offset, phase))
}

fn dropout_typed<'py, T: Elem>(
    a: Bound<'py, PyArrayDyn<T>>,
    rule: DropoutRule,
    seed: u64,
    start: HalfPos,
    inplace: bool,
    out: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let py = a.py();
    require_contiguous(&a, "input")?;
    if matches!(out, Some(o) if o.is(&a)) {
        return dropout_typed(a, rule, seed, start, true, None);
    }
    if inplace {
        if !is_writeable(&a) {
            return Err(PyValueError::new_err("inplace dropout needs a writeable array, but the input is read-only"));
        }
        let mut rw = a
            .try_readwrite()
            .map_err(|e| PyValueError::new_err(format!("inplace dropout needs a writeable array: {e}")))?;
        let xs = rw.as_slice_mut()?;
        py.detach(|| dropout_forward_inplace(xs, rule, seed, start));
        drop(rw);
        return Ok(a.into_any());
    }
    map_into(&a, out, |xs, os| dropout_forward(xs, os, rule, seed, start))
}

/// Threads dropcore's kernels use.
#[pyfunction]
fn get_num_threads() -> usize {
    parallel::num_threads()
}

/// Set the threads dropcore's kernels use (1 ..= `max_num_threads()`); the pool is
/// (re)built lazily by the next parallel kernel call.
#[pyfunction]
fn set_num_threads(n: usize) -> PyResult<()> {
    Ok(parallel::set_num_threads(n)?)
}

/// The largest thread count `set_num_threads` accepts: 4 x the CPUs, at least 16.
#[pyfunction]
fn max_num_threads() -> usize {
    parallel::max_threads()
}

/// Problems found in the environment once at start-up (e.g. an invalid
/// `DROPCORE_NUM_THREADS`), for the package to report as warnings on import.
#[pyfunction]
fn _config_warnings() -> Vec<String> {
    parallel::config_warnings()
}

/// The instruction set the kernels picked at run time ("avx2" or "scalar").
#[pyfunction]
fn simd_isa() -> &'static str {
    rng::isa().name()
}

/// Panics on purpose, inside the released-GIL region: tests check it surfaces as a
/// Python exception instead of aborting the interpreter.
#[pyfunction]
fn _panic_for_tests(py: Python<'_>, message: String) {
    py.detach(|| parallel::install(|| panic!("{message}")))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(philox_words, m)?)?;
    m.add_function(wrap_pyfunction!(philox4x32_10, m)?)?;
    m.add_function(wrap_pyfunction!(dropout, m)?)?;
    m.add_function(wrap_pyfunction!(get_num_threads, m)?)?;
    m.add_function(wrap_pyfunction!(set_num_threads, m)?)?;
    m.add_function(wrap_pyfunction!(max_num_threads, m)?)?;
    m.add_function(wrap_pyfunction!(_config_warnings, m)?)?;
    m.add_function(wrap_pyfunction!(simd_isa, m)?)?;
    m.add_function(wrap_pyfunction!(_panic_for_tests, m)?)?;
    Ok(())
}
