//! Kernels of the layers around dropout, one module per layer family.
