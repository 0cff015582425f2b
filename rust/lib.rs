//! dropcore: dropout and its family at the speed of memory.
//!
//! Every random decision is a pure function of `(seed, index)` through the
//! counter-based Philox4x32-10 generator ([`rng`]), so results never depend on the
//! number of threads or on how an array is chunked. Kernels take plain slices,
//! shapes, `p`, a seed and an offset; they know nothing of Python, modules or graphs.
//!
//! - [`rng`]: Philox4x32-10, the word stream, scalar, AVX2 and AVX-512 paths.
//! - [`parallel`]: the private rayon pool and index-preserving chunking.
//! - [`dropout`]: element dropout forward / backward / in place (fused SIMD kernels per ISA).
//! - [`variants`]: channel, alpha, Gaussian, DropBlock, DropPath, DropConnect.
//! - [`epilogue`]: fused bias + ReLU (+ dropout) over a linear layer's output, and its backward.
//! - `python` (feature `python`): the PyO3 binding, the only module that knows Python.

pub mod dropout;
pub mod epilogue;
pub mod error;
pub mod float;
pub mod parallel;
pub mod rng;
pub mod variants;

#[cfg(feature = "python")]
mod python;

pub use error::{EngineError, Result};
pub use float::Real;
