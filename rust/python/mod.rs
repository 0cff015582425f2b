//! The PyO3 binding: the only module that knows Python.
//!
//! Conventions every binding file follows:
//! - arguments are converted and validated here (dtype -> `TypeError`, engine errors
//!   -> `ValueError` via `From<EngineError> for PyErr`), then the kernel runs inside
//!   `py.detach` so the GIL is released, except on arrays too small for that to pay
//!   ([`run_kernel`]);
//! - arrays arrive C-contiguous, aligned and native-endian (the Python layer makes
//!   them so) and are read through slices; anything else is refused with a
//!   `ValueError`/`TypeError`, never read through a misaligned or aliased slice;
//! - outputs are fresh NumPy arrays that the kernel writes completely (see
//!   [`new_array`] for what that relies on; a request too large for memory is a
//!   `MemoryError`, never an abort) or the caller's `out`, which must share no byte
//!   with the input (an exact address-range test, whatever objects own the memory);
//! - one generic body per function serves f32 and f64 through [`dispatch_float!`];
//! - a Rust panic becomes a Python exception (PyO3's `PanicException`), never an abort.
//!
//! As in every NumPy extension, another Python thread mutating an array while a kernel
//! reads it (with the GIL released) is a data race the caller must avoid.

use std::ffi::c_int;

use numpy::npyffi::{npy_intp, NpyTypes, NPY_ARRAY_WRITEABLE};
use numpy::{dtype, PyArrayDescrMethods, PyArrayDyn, PyArrayMethods, PyUntypedArray, PyUntypedArrayMethods, PY_ARRAY_API};
use pyo3::exceptions::{PyMemoryError, PyTypeError, PyValueError};
use pyo3::prelude::*;

use crate::{EngineError, Real};

mod dropout;
mod epilogue;
mod variants;

impl From<EngineError> for PyErr {
    fn from(e: EngineError) -> PyErr {
        PyValueError::new_err(e.to_string())
    }
}

/// An element type that crosses the boundary: `f32` or `f64`.
pub(crate) trait Elem: Real + numpy::Element {}
impl Elem for f32 {}
impl Elem for f64 {}

/// A float NumPy array of either dtype.
pub(crate) enum FloatArray<'py> {
    F32(Bound<'py, PyArrayDyn<f32>>),
    F64(Bound<'py, PyArrayDyn<f64>>),
}

/// `x` as a float32/float64 array, or a `TypeError` naming `name` and the dtype.
pub(crate) fn float_array<'py>(x: &Bound<'py, PyAny>, name: &str) -> PyResult<FloatArray<'py>> {
    let py = x.py();
    let arr = x
        .cast::<PyUntypedArray>()
        .map_err(|_| PyTypeError::new_err(format!("{name} must be a numpy.ndarray, but got {}", type_name(x))))?;
    let dt = arr.dtype();
    if dt.is_equiv_to(&dtype::<f32>(py)) {
        Ok(FloatArray::F32(arr.cast::<PyArrayDyn<f32>>()?.clone()))
    } else if dt.is_equiv_to(&dtype::<f64>(py)) {
        Ok(FloatArray::F64(arr.cast::<PyArrayDyn<f64>>()?.clone()))
    } else {
        Err(PyTypeError::new_err(format!("{name} must be float32 or float64, but got dtype {dt}")))
    }
}

fn type_name(x: &Bound<'_, PyAny>) -> String {
    x.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "?".into())
}

/// Run one generic body for whichever float dtype the array has:
/// `dispatch_float!(arr, |a| body)` binds `a: Bound<PyArrayDyn<T>>` with `T` f32 or f64.
macro_rules! dispatch_float {
    ($arr:expr, |$a:ident| $body:expr) => {
        match $arr {
            $crate::python::FloatArray::F32($a) => $body,
            $crate::python::FloatArray::F64($a) => $body,
        }
    };
}
pub(crate) use dispatch_float;

/// How a fresh array's memory starts.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Init {
    Zeroed,
    Uninit,
}

/// A fresh C-contiguous NumPy array of `shape`, or `MemoryError`: a request whose byte
/// count does not fit in `isize` never reaches the allocator, and one the allocator
/// refuses comes back as NumPy's `MemoryError` (never an abort or a panic).
fn allocate<'py, T: numpy::Element>(py: Python<'py>, shape: &[usize], init: Init) -> PyResult<Bound<'py, PyArrayDyn<T>>> {
    let bytes = shape.iter().try_fold(std::mem::size_of::<T>(), |acc, &d| acc.checked_mul(d));
    if !matches!(bytes, Some(b) if b <= isize::MAX as usize) {
        return Err(PyMemoryError::new_err(format!(
            "cannot allocate an array of shape {shape:?}: more bytes than the address space holds"
        )));
    }
    // Every dimension is at most the byte count, so it fits in `npy_intp` (isize).
    let mut dims: Vec<npy_intp> = shape.iter().map(|&d| d as npy_intp).collect();
    let ndim = c_int::try_from(dims.len()).map_err(|_| PyValueError::new_err("too many dimensions"))?;
    // SAFETY: both NumPy constructors read `ndim` dimensions from `dims` (a live buffer
    // of that length; null strides and data mean "C order, allocate for me"), steal the
    // descriptor reference that `into_dtype_ptr` hands over, and return a new reference
    // or NULL with a Python exception set; `from_owned_ptr_or_err` takes ownership of
    // exactly that reference or fetches the exception. The descriptor is `T`'s, so the
    // result is an array of `T`. The GIL is held (`py`).
    unsafe {
        let descr = T::get_dtype(py).into_dtype_ptr();
        let ptr = match init {
            Init::Zeroed => PY_ARRAY_API.PyArray_Zeros(py, ndim, dims.as_mut_ptr(), descr, 0),
            Init::Uninit => PY_ARRAY_API.PyArray_NewFromDescr(
                py,
                PY_ARRAY_API.get_type_object(py, NpyTypes::PyArray_Type),
                descr,
                ndim,
                dims.as_mut_ptr(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                0,
                std::ptr::null_mut(),
            ),
        };
        Ok(Bound::from_owned_ptr_or_err(py, ptr)?.cast_into_unchecked())
    }
}

/// A fresh zero-filled array of `shape` (NumPy's `calloc` path), or `MemoryError`.
pub(crate) fn zeros<'py, T: numpy::Element>(py: Python<'py>, shape: &[usize]) -> PyResult<Bound<'py, PyArrayDyn<T>>> {
    allocate(py, shape, Init::Zeroed)
}

/// A fresh array of `shape` whose elements are NOT initialised, for a kernel that
/// writes every element before it reads any, or `MemoryError`.
///
/// What is guaranteed, and what is not: every caller hands the whole buffer to one
/// kernel and returns the array to Python only after that kernel succeeded (on an
/// error the array is dropped unseen), and every kernel of this crate writes each
/// element of its output before reading it (the DropConnect gradients zero-fill
/// first); `tests/test_hardening.py` checks this for every kernel with NaN-filled
/// `out=` buffers. So no uninitialised value is ever read or seen by Python. The
/// slice the kernel receives is still typed `&mut [T]` over memory not yet written,
/// which the standard library's documentation does not allow; the strict fix is
/// kernels that take `&mut [MaybeUninit<T>]`. Zero-filling instead costs a full extra
/// pass over memory (a fresh 10^6-element dropout took +40%), so it is kept for
/// [`zeros`]'s callers.
pub(crate) fn new_array<'py, T: numpy::Element>(py: Python<'py>, shape: &[usize]) -> PyResult<Bound<'py, PyArrayDyn<T>>> {
    allocate(py, shape, Init::Uninit)
}

/// The bytes `a`'s elements occupy, `[start, end)`: exact for a C-contiguous array.
fn byte_range<T: Elem>(a: &Bound<'_, PyArrayDyn<T>>) -> (usize, usize) {
    let start = a.data() as usize;
    (start, start + a.len() * std::mem::size_of::<T>())
}

/// Whether two C-contiguous arrays share any byte (empty arrays share none). Exact,
/// whatever objects own the memory: two `np.frombuffer` views of one buffer are caught.
pub(crate) fn overlap<T: Elem>(a: &Bound<'_, PyArrayDyn<T>>, b: &Bound<'_, PyArrayDyn<T>>) -> bool {
    let ((a0, a1), (b0, b1)) = (byte_range(a), byte_range(b));
    a0 < a1 && b0 < b1 && a0 < b1 && b0 < a1
}

/// Where a kernel writes the result for input `a`: the caller's `out` (checked: the
/// input's dtype and shape, C-contiguous, aligned, writeable, sharing no byte with
/// `a`) or a fresh array.
pub(crate) fn output_for<'py, T: Elem>(
    a: &Bound<'py, PyArrayDyn<T>>,
    out: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyArrayDyn<T>>> {
    let Some(o) = out else {
        return new_array::<T>(a.py(), a.shape());
    };
    let o = o
        .cast::<PyArrayDyn<T>>()
        .map_err(|_| PyValueError::new_err("out must be an array of the input's dtype"))?
        .clone();
    require_contiguous(&o, "out")?;
    if o.shape() != a.shape() {
        return Err(PyValueError::new_err(format!(
            "out has shape {:?} but the input has shape {:?}",
            o.shape(),
            a.shape()
        )));
    }
    if overlap(a, &o) {
        return Err(PyValueError::new_err("out must not overlap the input (use inplace=True)"));
    }
    if !is_writeable(&o) {
        return Err(PyValueError::new_err("out must be writeable, but it is read-only"));
    }
    Ok(o)
}

/// `kernel(x, out)` with the GIL released, into `out` (checked) or a fresh array.
pub(crate) fn map_into<'py, T: Elem>(
    a: &Bound<'py, PyArrayDyn<T>>,
    out: Option<&Bound<'py, PyAny>>,
    kernel: impl FnOnce(&[T], &mut [T]) -> crate::Result<()> + Send,
) -> PyResult<Bound<'py, PyAny>> {
    let py = a.py();
    require_contiguous(a, "input")?;
    let out = output_for(a, out)?;
    {
        let ro = read(a, "input")?;
        let xs = ro.as_slice()?;
        // `output_for` proved the two do not overlap; rust-numpy's borrow flags also
        // refuse a second writer of the same array.
        let mut rw = out
            .try_readwrite()
            .map_err(|e| PyValueError::new_err(format!("out must be writeable and must not overlap the input: {e}")))?;
        let os = rw.as_slice_mut()?;
        run_kernel(py, xs.len(), || kernel(xs, os))?;
    }
    Ok(out.into_any())
}

/// `a` borrowed for reading, or a `ValueError` if another call (another Python
/// thread, GIL released) is writing it right now: never a panic.
pub(crate) fn read<'py, T: Elem>(a: &Bound<'py, PyArrayDyn<T>>, name: &str) -> PyResult<numpy::PyReadonlyArrayDyn<'py, T>> {
    a.try_readonly()
        .map_err(|e| PyValueError::new_err(format!("{name} is being written by another call: {e}")))
}

/// `a` borrowed for writing, or a `ValueError` (read-only, or in use by another call).
pub(crate) fn write<'py, T: Elem>(a: &Bound<'py, PyArrayDyn<T>>, name: &str) -> PyResult<numpy::PyReadwriteArrayDyn<'py, T>> {
    a.try_readwrite()
        .map_err(|e| PyValueError::new_err(format!("{name} must be writeable and not in use by another call: {e}")))
}

/// Calls on fewer elements than this run their kernel without releasing the GIL. Such
/// a kernel takes ~11 us at most (element dropout, 2-core Zen 1 EPYC), while a released GIL costs
/// ~0.2 us to take back when no other thread wants it and far more when one does: it
/// waits for that thread to let go (measured on a 2-core Zen 1 EPYC with one busy
/// Python thread: 8191 elements 11 us a call holding the GIL, 8192 elements 77 us).
pub(crate) const HOLD_GIL_BELOW: usize = 1 << 13;

/// `kernel()`, with the GIL released when `len` elements make that worth it.
pub(crate) fn run_kernel<R: Send>(py: Python<'_>, len: usize, kernel: impl FnOnce() -> R + Send) -> R {
    if len < HOLD_GIL_BELOW {
        kernel()
    } else {
        py.detach(kernel)
    }
}

/// Whether NumPy lets `a` be written (its `WRITEABLE` flag).
pub(crate) fn is_writeable<T: Elem>(a: &Bound<'_, PyArrayDyn<T>>) -> bool {
    // SAFETY: `as_array_ptr` points to the live `PyArrayObject` that `a` keeps alive
    // (we hold the GIL), and reading its `flags` field is what `PyArray_FLAGS` does.
    unsafe { (*a.as_array_ptr()).flags & NPY_ARRAY_WRITEABLE != 0 }
}

/// `Ok` if `a` can be read as one slice: C-contiguous and aligned for `T`; otherwise a
/// `ValueError` (the Python layer copies such arrays before it draws any word).
pub(crate) fn require_contiguous<T: Elem>(a: &Bound<'_, PyArrayDyn<T>>, name: &str) -> PyResult<()> {
    if !a.is_c_contiguous() {
        return Err(PyValueError::new_err(format!("{name} must be C-contiguous (the Python layer copies it)")));
    }
    if !(a.data() as usize).is_multiple_of(std::mem::align_of::<T>()) {
        return Err(PyValueError::new_err(format!("{name} must be aligned (the Python layer copies it)")));
    }
    Ok(())
}

/// Run every lazy one-time initialisation the kernels rely on (NumPy's C API table,
/// the dtypes, rust-numpy's shared borrow flags, the thread settings and fork
/// handlers, the instruction-set choice), now, while the module is imported.
///
/// Each of them is a once-cell that another thread may be filling (with the GIL
/// released part of the way) at the moment a process forks; the child then waits
/// forever for an initialisation that no thread of its own is running. Done at import,
/// under the import lock, before any thread of the program can call a kernel, they
/// are complete in every process forked later.
fn warm_up(py: Python<'_>) -> PyResult<()> {
    fn touch<T: numpy::Element>(py: Python<'_>) -> PyResult<()> {
        let a = zeros::<T>(py, &[1])?;
        let _ = dtype::<T>(py);
        drop(a.try_readonly().map_err(|e| PyValueError::new_err(e.to_string()))?);
        drop(a.try_readwrite().map_err(|e| PyValueError::new_err(e.to_string()))?);
        Ok(())
    }
    touch::<f32>(py)?;
    touch::<f64>(py)?;
    touch::<u32>(py)?;
    crate::parallel::init();
    let _ = crate::rng::isa();
    Ok(())
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    warm_up(m.py())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    dropout::register(m)?;
    variants::register(m)?;
    epilogue::register(m)?;
    Ok(())
}
