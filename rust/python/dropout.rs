//! Binding of the RNG, the thread pool and element dropout.

use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::{Mutex, MutexGuard};

use numpy::{PyArrayDyn, PyArrayMethods, PyUntypedArrayMethods};
use pyo3::exceptions::{PyOverflowError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyTuple};

use super::{dispatch_float, float_array, is_writeable, map_into, new_array, overlap, require_contiguous, run_kernel, Elem};
use crate::dropout::{dropout_forward, dropout_forward_inplace, DropoutRule};
use crate::rng::HalfPos;
use crate::{parallel, rng};

/// One past the last word of a stream: an offset of 2^64 means every word is used.
const STREAM_END: u128 = 1 << 64;

/// Where a `dropcore.Generator` is in its seed's Philox word stream (SPEC §2): the
/// seed and the next word to hand out (`0 ..= 2^64`), behind a mutex, so each range of
/// words is handed out once whatever the threads. The Python class `Generator`
/// subclasses it for its API and argument checks; kernels' bindings take words from it
/// without a Python call (issue 11: a Python-level lock and call cost ~0.7 us a call).
///
/// The mutex is only ever held for a few instructions with the GIL held and no Python
/// code running, so a thread that forks (holding the GIL) never leaves it locked.
#[pyclass(subclass, frozen, module = "dropcore._core")]
pub struct WordStream {
    position: Mutex<(u64, u128)>,
}

impl WordStream {
    fn lock(&self) -> MutexGuard<'_, (u64, u128)> {
        // (nothing can panic while it is held: a poisoned lock still holds a valid position)
        self.position.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reserve `n` words: `(seed, first word)`, or `OverflowError` (nothing taken) if
    /// fewer than `n` are left.
    pub(crate) fn take(&self, n: u128) -> PyResult<(u64, u128)> {
        let mut pos = self.lock();
        let (seed, start) = *pos;
        if n > STREAM_END - start {
            return Err(PyOverflowError::new_err(format!(
                "Philox word stream exhausted for seed {seed}: {n} words asked at offset {start}, {} left (2**64 per seed)",
                STREAM_END - start
            )));
        }
        pos.1 = start + n;
        Ok((seed, start))
    }
}

#[pymethods]
impl WordStream {
    /// Seed 0 at word 0; `Generator.__init__` sets the real position (the arguments
    /// are the subclass's, checked there).
    #[new]
    #[pyo3(signature = (*_args, **_kwargs))]
    fn new(_args: &Bound<'_, PyTuple>, _kwargs: Option<&Bound<'_, PyDict>>) -> Self {
        Self { position: Mutex::new((0, 0)) }
    }

    /// `(seed, offset)`, read atomically.
    fn _get_state(&self) -> (u64, u128) {
        *self.lock()
    }

    /// Move to word `offset` (`0 ..= 2^64`) of `seed`'s stream.
    fn _set_state(&self, seed: u64, offset: u128) -> PyResult<()> {
        if offset > STREAM_END {
            return Err(PyValueError::new_err(format!("offset must be in [0, 2**64], but got {offset}")));
        }
        *self.lock() = (seed, offset);
        Ok(())
    }

    /// Reserve `n` words: `(seed, first word)`; `OverflowError` if fewer are left.
    fn _take(&self, n: u128) -> PyResult<(u64, u128)> {
        self.take(n)
    }

    /// Give back words `start .. start + n` of a call that failed, if nothing was taken
    /// since (otherwise they stay used: skipping words is harmless, reusing them is not).
    fn _untake(&self, seed: u64, start: u128, n: u128) {
        let mut pos = self.lock();
        if pos.0 == seed && start.checked_add(n) == Some(pos.1) {
            pos.1 = start;
        }
    }
}

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
        run_kernel(py, xs.len(), || dropout_forward_inplace(xs, rule, seed, start));
        drop(rw);
        return Ok(a.into_any());
    }
    map_into(&a, out, |xs, os| dropout_forward(xs, os, rule, seed, start))
}

/// The common element-dropout call in one crossing (issue 11: what a small call costs
/// beyond its kernel): `p` a float in (0, 1], `inverted` and `inplace` bools, `x` a
/// non-empty float32/float64 array that the kernel reads as one slice (C-contiguous,
/// aligned, native), `out` None, `x` itself (in place), or an array of `x`'s dtype and
/// shape that is C-contiguous, aligned, writeable and shares no byte with `x`.
///
/// Everything is checked and borrowed first; only then are `ceil(n / 2)` words taken
/// from `generator` (a `dropcore.Generator`: its [`WordStream`], no Python call), and
/// they are given back if the kernel fails. Returns the result (`x`, `out` or a new
/// array), with `position` as `(result, seed, offset)`; or `None`, having drawn and
/// written nothing, for any other call: the Python layer then takes its general path,
/// which copies odd layouts and raises the documented errors.
#[pyfunction]
#[pyo3(signature = (x, p, generator, inverted, inplace, out, position = false))]
fn dropout_call<'py>(
    x: &Bound<'py, PyAny>,
    p: &Bound<'py, PyAny>,
    generator: &Bound<'py, PyAny>,
    inverted: &Bound<'py, PyAny>,
    inplace: &Bound<'py, PyAny>,
    out: &Bound<'py, PyAny>,
    position: bool,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    let (Ok(p), Ok(inverted), Ok(inplace)) = (p.cast_exact::<PyFloat>(), inverted.cast::<PyBool>(), inplace.cast::<PyBool>())
    else {
        return Ok(None);
    };
    let p = p.value();
    if !(p > 0.0 && p <= 1.0) {
        return Ok(None); // (p == 0 is the identity, NaN and the rest an error)
    }
    let rule = DropoutRule::new(p, inverted.is_true())?;
    let Ok(arr) = float_array(x, "input") else {
        return Ok(None);
    };
    let (inplace, out) = match (inplace.is_true(), out) {
        (inplace, o) if o.is_none() => (inplace, None),
        (_, o) if o.is(x) => (true, None),
        (false, o) => (false, Some(o)),
        (true, _) => return Ok(None), // two destinations: the general path says so
    };
    let Ok(stream) = generator.cast::<WordStream>() else {
        return Ok(None);
    };
    let call = Call { stream: stream.get(), rule, position };
    dispatch_float!(arr, |a| call.run(a, inplace, out))
}

/// A checked [`dropout_call`]: where the words come from, the rule, what to return.
struct Call<'a> {
    stream: &'a WordStream,
    rule: DropoutRule,
    position: bool,
}

impl Call<'_> {
    fn run<'py, T: Elem>(
        &self,
        a: Bound<'py, PyArrayDyn<T>>,
        inplace: bool,
        out: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        let py = a.py();
        let len = a.len();
        if len == 0 || !behaved(&a) || (inplace && !is_writeable(&a)) {
            return Ok(None);
        }
        let n_words = (len as u64).div_ceil(2);
        if inplace {
            // (a borrow refused: another thread is using the array; the general path says so)
            let Ok(mut rw) = a.try_readwrite() else { return Ok(None) };
            let xs = rw.as_slice_mut()?;
            let (seed, offset) = self.take(n_words)?;
            let rule = self.rule;
            self.kernel(n_words, seed, offset, || {
                run_kernel(py, len, || dropout_forward_inplace(xs, rule, seed, HalfPos::new(offset, 0)));
                Ok(())
            })?;
            drop(rw);
            return self.result(a.into_any(), seed, offset);
        }
        let dest = match out {
            None => new_array::<T>(py, a.shape())?, // (a MemoryError before any word is drawn)
            Some(o) => match o.cast::<PyArrayDyn<T>>() {
                Ok(o) if behaved(o) && o.shape() == a.shape() && is_writeable(o) && !overlap(&a, o) => o.clone(),
                _ => return Ok(None),
            },
        };
        let (Ok(ro), Ok(mut rw)) = (a.try_readonly(), dest.try_readwrite()) else { return Ok(None) };
        let (xs, os) = (ro.as_slice()?, rw.as_slice_mut()?);
        let (seed, offset) = self.take(n_words)?;
        let rule = self.rule;
        self.kernel(n_words, seed, offset, || {
            run_kernel(py, len, || dropout_forward(xs, os, rule, seed, HalfPos::new(offset, 0))).map_err(PyErr::from)
        })?;
        drop((ro, rw));
        self.result(dest.into_any(), seed, offset)
    }

    /// `n` words (`n > 0`) from the generator: `(seed, first word)`.
    fn take(&self, n: u64) -> PyResult<(u64, u64)> {
        let (seed, start) = self.stream.take(n as u128)?;
        Ok((seed, start as u64)) // (`start < 2^64`: at least one word was left)
    }

    /// `kernel()`; if it fails or panics, the words go back to the generator first.
    fn kernel(&self, n: u64, seed: u64, offset: u64, kernel: impl FnOnce() -> PyResult<()>) -> PyResult<()> {
        match catch_unwind(AssertUnwindSafe(kernel)) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                self.stream._untake(seed, offset as u128, n as u128);
                Err(e)
            }
            Err(panic) => {
                self.stream._untake(seed, offset as u128, n as u128);
                resume_unwind(panic)
            }
        }
    }

    fn result<'py>(&self, y: Bound<'py, PyAny>, seed: u64, offset: u64) -> PyResult<Option<Bound<'py, PyAny>>> {
        if !self.position {
            return Ok(Some(y));
        }
        let py = y.py();
        Ok(Some((y, seed, offset).into_pyobject(py)?.into_any()))
    }
}

/// Whether the kernels can read `a` as one slice: C-contiguous and aligned (a typed
/// array's dtype is native: rust-numpy's cast checks that).
fn behaved<T: Elem>(a: &Bound<'_, PyArrayDyn<T>>) -> bool {
    a.is_c_contiguous() && (a.data() as usize).is_multiple_of(std::mem::align_of::<T>())
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

/// The instruction set the kernels picked at run time ("avx512", "avx2" or "scalar").
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
    m.add_class::<WordStream>()?;
    m.add_function(wrap_pyfunction!(philox_words, m)?)?;
    m.add_function(wrap_pyfunction!(philox4x32_10, m)?)?;
    m.add_function(wrap_pyfunction!(dropout, m)?)?;
    m.add_function(wrap_pyfunction!(dropout_call, m)?)?;
    m.add_function(wrap_pyfunction!(get_num_threads, m)?)?;
    m.add_function(wrap_pyfunction!(set_num_threads, m)?)?;
    m.add_function(wrap_pyfunction!(max_num_threads, m)?)?;
    m.add_function(wrap_pyfunction!(_config_warnings, m)?)?;
    m.add_function(wrap_pyfunction!(simd_isa, m)?)?;
    m.add_function(wrap_pyfunction!(_panic_for_tests, m)?)?;
    Ok(())
}
