//! Kernels of the variants of dropout, one module per family (see each module doc).
