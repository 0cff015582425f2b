//! Kernels of the variants of dropout, one module per family.
//!
//! - [`grouped`]: one Bernoulli word per contiguous group of elements: channel
//!   dropout (Dropout1d/2d/3d, FeatureAlphaDropout: one word per (sample, channel))
//!   and DropPath (one word per sample).
//! - [`gaussian`]: Gaussian dropout and additive Gaussian noise (Box-Muller over word pairs).
//! - [`dropblock`]: DropBlock (Ghiasi et al. 2018).
//! - [`dropconnect`]: DropConnect with one weight mask per example (Wan et al. 2013).
//!
//! Element-wise alpha dropout is the element kernel of [`crate::dropout`] with an
//! [`crate::dropout::Affine`] map.

pub mod dropblock;
pub mod dropconnect;
pub mod gaussian;
pub mod grouped;
