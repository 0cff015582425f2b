"""dropcore on Dask: lazy dropout over Dask arrays and MC-dropout prediction over a
row-chunked batch, with results identical to the one-array run.

Every random word is a pure function of ``(seed, index)`` (SPEC §2), so a block only
needs to know where it sits in the whole array: each block's task starts its masks at
the words the one-array call would give its elements (the C-order index of the whole
array decides, not the block's). ``result.compute()`` therefore equals the NumPy
functional on ``x.compute()`` bit for bit, for any chunking (uneven, several
dimensions), any scheduler (threads, processes, ``dask.distributed``) and any number of
workers; a retried task recomputes exactly the same block.

The caller's generator advances once, at graph-construction time, by the words of the
whole array, as the one-array call would advance it. Needs the ``dask`` extra:
``pip install "dropcore[dask]"`` (dask[array], distributed).

Threads on workers: a task that runs in a process other than the one that built the
graph sets dropcore's pool (and, when ``threadpoolctl`` is installed, the BLAS) to the
cores that process was given: a ``distributed`` worker's ``nthreads``, or 1 under the
``processes`` scheduler (one process per core). So Dask's threads x dropcore's
threads never exceed the cores. In the client process (the threaded scheduler) the
tasks share dropcore's one pool, which never oversubscribes by itself.
"""

from __future__ import annotations

import copy
import math
import os
import uuid
import weakref
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

try:
    import dask
    import dask.array as da
except ImportError as e:  # pragma: no cover - exercised only without the extra
    raise ImportError('dropcore.dask needs Dask: pip install "dropcore[dask]"') from e

from . import _core
from . import dropout as _F
from . import mc as _mc
from .random import Generator, _resolve

__all__ = [
    "dropout",
    "alpha_dropout",
    "dropout1d",
    "dropout2d",
    "dropout3d",
    "feature_alpha_dropout",
    "drop_path",
    "gaussian_dropout",
    "gaussian_noise",
    "mc_predict",
    "DaskMCPrediction",
    "configure_threads",
]


# --- where a block sits in the whole array -------------------------------------------

def _block_runs(location: list[tuple[int, int]], shape: tuple[int, ...]) -> tuple[np.ndarray, int]:
    """The block at ``location`` (per-dim ``(start, stop)``) of an array of ``shape``, as
    runs of consecutive C-order indices of the whole array, in the block's own C order.

    Returns ``(starts, length)``: the global index where each run starts and the common
    run length. A block that spans whole trailing dimensions is one run per index of
    its leading dimensions; a block that is the whole array (or a full row range) is one.
    """
    sizes = [b - a for a, b in location]
    # j: the last dimension the block does not span whole; runs cover dims j.. of it
    j = max((d for d in range(len(shape)) if sizes[d] != shape[d]), default=0)
    length = int(np.prod(sizes[j:], dtype=np.int64)) if sizes else 1
    strides = [int(np.prod(shape[d + 1 :], dtype=np.int64)) for d in range(len(shape))]
    start = sum(a * s for (a, _), s in zip(location[j:], strides[j:]))
    lead = [np.arange(a, b, dtype=np.int64) * s for (a, b), s in zip(location[:j], strides[:j])]
    starts = np.full(1, start, np.int64)
    for axis in lead:  # C order over the leading dims: the first one varies slowest
        starts = (starts[:, None] + axis[None, :]).reshape(-1)
    return starts, length


def _native(block: np.ndarray) -> np.ndarray:
    """A C-contiguous, aligned, native-byte-order array (the kernels need it; a block
    deserialised from a worker's message frames may be misaligned)."""
    return _F._behaved(np.asarray(block))


# --- the per-block tasks (module-level functions: they travel by pickle) -------------

_configured_pid: int | None = None
# Who built a graph: a random token (pids repeat across machines and containers) and
# the pid (a forked child keeps the token).
_PROCESS_TOKEN = uuid.uuid4().hex


def _builder() -> tuple[str, int]:
    return _PROCESS_TOKEN, os.getpid()


def configure_threads(n: int) -> None:
    """Give dropcore's pool (and the BLAS, when ``threadpoolctl`` is importable) ``n``
    threads in this process: the rule for Dask workers is ``n`` = the cores the worker
    process was given (``nthreads`` of a ``distributed`` worker), so that Dask's
    threads x dropcore's threads never exceed the machine's cores. The tasks of this
    module do it themselves in worker processes; call it yourself for other code that
    runs on workers, e.g. ``client.run(dropcore.dask.configure_threads, 1)``."""
    from . import set_num_threads

    set_num_threads(n)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return
    threadpool_limits(n, user_api="blas")


def _configure_worker(builder: tuple[str, int]) -> None:
    """Once per process: in a worker process, fit dropcore's threads to its cores."""
    global _configured_pid
    pid = os.getpid()
    if _configured_pid == pid:
        return
    _configured_pid = pid
    if tuple(builder) == _builder():
        return  # the threaded scheduler in the client: one shared pool, leave it
    n = 1  # the processes scheduler: one task per process, one process per core
    try:
        from distributed import get_worker

        n = max(1, int(get_worker().state.nthreads))
    except (ImportError, ValueError, AttributeError):
        pass
    configure_threads(n)


def _map_runs(block, block_info, builder, lead_dims: int, run) -> np.ndarray:
    """The frame every per-block task shares: ``run(x_part, out_part, g)`` on each part of
    the block that is one contiguous run of the whole array's C order over its first
    ``lead_dims`` dims, ``g`` being that run's first global index over those dims."""
    _configure_worker(builder)
    x = _native(block)
    out = np.empty_like(x)
    if x.size == 0:
        return out
    location, shape = block_info[0]["array-location"], block_info[0]["shape"]
    starts, length = _block_runs(location[:lead_dims], shape[:lead_dims])
    span = length * int(np.prod(x.shape[lead_dims:], dtype=np.int64))
    flat_x, flat_out = x.reshape(-1), out.reshape(-1)
    for k, g in enumerate(starts.tolist()):
        run(flat_x[k * span : (k + 1) * span], flat_out[k * span : (k + 1) * span], g)
    return out


def _element_block(block, *, kind, p, a, b, dropped, inverted, seed, offset, builder, block_info=None):
    """Element-wise Bernoulli mask (dropout, alpha dropout) on one block: element ``g``
    of the whole array reads half-word ``2 * offset + g`` (SPEC §2)."""

    def run(x, out, g):
        word, phase = _element_start(offset, g)
        if kind == "dropout":
            _core.dropout(x, p, seed, word, inverted, False, out, phase=phase)
        else:
            _core.bernoulli_map(x, p, a, b, dropped, seed, word, None, out, phase=phase)

    return _map_runs(block, block_info, builder, block.ndim, run)


def _grouped_block(block, *, group_dims, p, a, b, dropped, seed, offset, builder, block_info=None):
    """One word per group of the leading ``group_dims`` dims (channel dropout, DropPath,
    feature alpha dropout): group ``i`` (C order over those dims) reads word ``offset + i``."""
    inner = max(int(np.prod(block.shape[group_dims:], dtype=np.int64)), 1)  # a group's elements here

    def run(x, out, g):
        _core.bernoulli_map(x, p, a, b, dropped, seed, offset + g, inner, out)

    return _map_runs(block, block_info, builder, group_dims, run)


def _gaussian_block(block, *, scale, multiplicative, seed, offset, builder, block_info=None):
    """Gaussian noise on one block: elements ``2k`` and ``2k + 1`` of the whole array
    share the Box-Muller pair of words ``offset + 2k``, ``offset + 2k + 1`` (cosine,
    sine), so a run starting at element ``g`` starts at pair ``g // 2``, phase ``g % 2``."""

    def run(x, out, g):
        out[...] = _core.gaussian_map(x, scale, multiplicative, seed, offset + 2 * (g // 2), None, g % 2)

    return _map_runs(block, block_info, builder, block.ndim, run)


# --- contract v2 of the element masks ------------------------------------------------

def _element_start(offset: int, g: int) -> tuple[int, int]:
    """``(word, phase)`` where global element ``g`` of a call at ``offset`` starts: it
    reads half-word ``2 * offset + g`` (SPEC §2, contract v2)."""
    return offset + g // 2, g % 2


def _element_words(n: int) -> int:
    """Words an element-mask call on ``n`` elements draws: two elements a word."""
    return (n + 1) // 2


# --- argument checks shared by the public functions ----------------------------------

def _check_array(x: Any, name: str = "input") -> "da.Array":
    if not isinstance(x, da.Array):
        raise TypeError(
            f"{name} must be a dask.array.Array (use dropcore.nn.functional for NumPy arrays), "
            f"but got {type(x).__name__}"
        )
    if x.dtype.kind != "f" or x.dtype.itemsize not in (4, 8):
        raise TypeError(f"{name} must be float32 or float64, but got dtype {x.dtype}")
    if any(math.isnan(c) for dim in x.chunks for c in dim):
        raise ValueError(f"{name} has unknown chunk sizes; call x.compute_chunk_sizes() first")
    return x


def _map(fn: Callable, x: "da.Array", token: str, **kwargs) -> "da.Array":
    return da.map_blocks(
        fn, x, dtype=x.dtype.newbyteorder("="), token=f"dropcore-{token}", builder=_builder(), **kwargs
    )


# --- the public functions ------------------------------------------------------------

def dropout(
    input: "da.Array",
    p: float = 0.5,
    training: bool = True,
    generator: Generator | None = None,
    inverted: bool = True,
) -> "da.Array":
    """Lazy :func:`dropcore.nn.functional.dropout` over a Dask array.

    Args:
        input: a float32/float64 ``dask.array.Array`` of any shape and chunking.
        p, training, inverted: as for :func:`dropcore.nn.functional.dropout`.
        generator: the :class:`dropcore.Generator` to draw from (default: the global
            one); it advances now by the words of the whole array.

    Returns:
        A Dask array whose ``compute()`` equals
        ``dropcore.nn.functional.dropout(input.compute(), p, ...)`` bit for bit (with
        the generator in the same state); ``input`` itself in the identity cases.

    Example:
        >>> import dask.array as da, dropcore, dropcore.dask
        >>> x = da.ones((6, 4), chunks=(4, 3), dtype="float32")
        >>> y = dropcore.dask.dropout(x, 0.5, generator=dropcore.Generator(0))
        >>> sorted(set(y.compute().ravel().tolist()))
        [0.0, 2.0]
    """
    p = _F._check_p(p)
    x = _check_array(input)
    if not training or p == 0.0:
        if inverted or p == 0.0:
            return input
        return x * x.dtype.type(1.0 - p)
    seed, offset = _resolve(generator).take(_element_words(x.size))
    return _map(_element_block, x, "dropout", kind="dropout", p=p, a=0.0, b=0.0, dropped=0.0,
                inverted=bool(inverted), seed=seed, offset=offset)


def alpha_dropout(input: "da.Array", p: float = 0.5, training: bool = False, generator: Generator | None = None) -> "da.Array":
    """Lazy :func:`dropcore.nn.functional.alpha_dropout` (SELU-preserving, element-wise
    masks; note PyTorch's default ``training=False``)."""
    p = _F._check_p(p)
    x = _check_array(input)
    if not training or p == 0.0:
        return input
    if p == 1.0:
        _resolve(generator)
        return da.zeros_like(x)
    a, b, d = _F._alpha_constants(p)
    seed, offset = _resolve(generator).take(_element_words(x.size))
    return _map(_element_block, x, "alpha-dropout", kind="alpha", p=p, a=a, b=b, dropped=d,
                inverted=True, seed=seed, offset=offset)


def _grouped(x, p, generator, group_dims, a, b, dropped, token):
    groups = int(np.prod(x.shape[:group_dims], dtype=np.int64))
    seed, offset = _resolve(generator).take(groups)
    return _map(_grouped_block, x, token, group_dims=group_dims, p=p, a=a, b=b, dropped=dropped,
                seed=seed, offset=offset)


_PROBE_SHAPE = (2, 3, 5, 7, 11, 13, 17)


def _channel_dropout(input, p, training, generator, fn):
    """Channel dropout through the NumPy functional's own shape rules: ``fn`` runs on a
    small probe of the input's rank (its errors and PyTorch's warnings surface as they
    would), and the words it draws tell which leading dims share one word."""
    p = _F._check_p(p)
    x = _check_array(input)
    if x.ndim > len(_PROBE_SHAPE):
        raise ValueError(f"{fn.__name__}: input of shape {x.shape} has too many dimensions")
    shape = _PROBE_SHAPE[: x.ndim]
    probe = Generator(0)
    fn(np.ones(shape, x.dtype), p, training, generator=probe)
    if not training or p == 0.0 or x.size == 0:
        return input
    if probe.offset == 0:  # p == 1 on a rank without channels: zeros, no words
        _resolve(generator)
        return da.zeros_like(x)
    group_dims = next(k for k in range(x.ndim + 1) if math.prod(shape[:k]) == probe.offset)
    s = 1.0 / (1.0 - p) if p < 1.0 else 0.0
    return _grouped(x, p, generator, group_dims, s, 0.0, 0.0, fn.__name__)


def dropout1d(input: "da.Array", p: float = 0.5, training: bool = True, generator: Generator | None = None) -> "da.Array":
    """Lazy :func:`dropcore.nn.functional.dropout1d`: whole channels of (N, C, L) or
    (C, L), one word per (sample, channel)."""
    return _channel_dropout(input, p, training, generator, _F.dropout1d)


def dropout2d(input: "da.Array", p: float = 0.5, training: bool = True, generator: Generator | None = None) -> "da.Array":
    """Lazy :func:`dropcore.nn.functional.dropout2d`: whole channels of (N, C, H, W) or (C, H, W)."""
    return _channel_dropout(input, p, training, generator, _F.dropout2d)


def dropout3d(input: "da.Array", p: float = 0.5, training: bool = True, generator: Generator | None = None) -> "da.Array":
    """Lazy :func:`dropcore.nn.functional.dropout3d`: whole channels of (N, C, D, H, W) or (C, D, H, W)."""
    return _channel_dropout(input, p, training, generator, _F.dropout3d)


def feature_alpha_dropout(input: "da.Array", p: float = 0.5, training: bool = False,
                          generator: Generator | None = None) -> "da.Array":
    """Lazy :func:`dropcore.nn.functional.feature_alpha_dropout`: alpha dropout of whole
    channels (dims 0 and 1 share a word)."""
    p = _F._check_p(p)
    x = _check_array(input)
    if not training or p == 0.0 or x.size == 0:
        return input
    if p == 1.0:
        _resolve(generator)
        return da.zeros_like(x)
    if x.ndim < 2:
        raise RuntimeError(_F._FEATURE_DIMS)  # PyTorch's error, as the NumPy functional
    a, b, d = _F._alpha_constants(p)
    return _grouped(x, p, generator, 2, a, b, d, "feature-alpha-dropout")


def drop_path(x: "da.Array", p: float = 0.0, training: bool = False, scale_by_keep: bool = True,
              generator: Generator | None = None) -> "da.Array":
    """Lazy :func:`dropcore.nn.functional.drop_path` (stochastic depth): whole samples
    (dim 0), one word per sample."""
    p = _F._check_p(p, "drop_path probability")
    arr = _check_array(x)
    if arr.ndim < 1:
        raise ValueError("drop_path needs at least 1-D input (samples on dim 0)")
    if not training or p == 0.0 or arr.size == 0:
        return x
    s = (1.0 / (1.0 - p) if p < 1.0 else 0.0) if scale_by_keep else 1.0
    return _grouped(arr, p, generator, 1, s, 0.0, 0.0, "drop-path")


def gaussian_dropout(input: "da.Array", p: float = 0.5, training: bool = True,
                     generator: Generator | None = None) -> "da.Array":
    """Lazy :func:`dropcore.nn.functional.gaussian_dropout`: times N(1, p/(1-p)); elements
    2k and 2k+1 of the whole array share words 2k and 2k+1 (a Box-Muller pair)."""
    p = _F._check_p(p)
    if p == 1.0:
        raise ValueError("gaussian_dropout needs p < 1 (the noise variance p/(1-p) is infinite at p = 1)")
    x = _check_array(input)
    if not training or p == 0.0:
        return input
    seed, offset = _resolve(generator).take(_F._gaussian_words(x.size))
    return _map(_gaussian_block, x, "gaussian-dropout", scale=math.sqrt(p / (1.0 - p)), multiplicative=True,
                seed=seed, offset=offset)


def gaussian_noise(input: "da.Array", stddev: float, training: bool = True,
                   generator: Generator | None = None) -> "da.Array":
    """Lazy :func:`dropcore.nn.functional.gaussian_noise`: plus N(0, stddev^2)."""
    stddev = _F._check_real(stddev, "stddev")
    x = _check_array(input)
    if not training or stddev == 0.0:
        return input
    seed, offset = _resolve(generator).take(_F._gaussian_words(x.size))
    return _map(_gaussian_block, x, "gaussian-noise", scale=stddev, multiplicative=False, seed=seed, offset=offset)


# --- MC-dropout prediction -----------------------------------------------------------

@dataclass
class DaskMCPrediction:
    """What :func:`mc_predict` returns: the fields of :class:`dropcore.mc.MCPrediction`
    as lazy Dask arrays, chunked like the input's rows. They share one task per chunk,
    so computing or storing several of them together runs each forward once
    (``compute()``, ``dask.compute(r.mean, r.entropy)``, ``da.store([...], [...])``)."""

    mean: "da.Array"
    variance: "da.Array"
    entropy: "da.Array"
    mutual_information: "da.Array"
    samples: "da.Array | None" = None

    @property
    def prediction(self) -> "da.Array":
        """The class with the highest mean probability (lazy)."""
        return self.mean.argmax(axis=1)

    def compute(self, **kwargs) -> _mc.MCPrediction:
        """All fields at once, as a :class:`dropcore.mc.MCPrediction` of ndarrays
        (keyword arguments go to ``dask.compute``, e.g. ``scheduler="processes"``)."""
        fields = [self.mean, self.variance, self.entropy, self.mutual_information]
        if self.samples is not None:
            fields.append(self.samples)
        values = dask.compute(*fields, **kwargs)
        return _mc.MCPrediction(*values[:4], values[4] if len(values) > 4 else None)


# Per process: the shipped model -> the copy its tasks run. MC prediction flips flags
# and wraps modules of the model it runs, while a worker may be pickling the shipped
# model for a peer at the same moment: the shipped object itself is never touched.
_working_copies: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _working_copy(model):
    with _mc._LOCK:
        work = _working_copies.get(model)
        if work is None:
            work = _working_copies[model] = copy.deepcopy(model)
        return work


def _mc_block(block, model, plan, return_samples, builder, block_info=None):
    """One chunk of rows: its MC prediction packed as columns
    ``[mean (C), variance (C), entropy, mutual information, samples (T*C)?]``."""
    _configure_worker(builder)
    first = block_info[0]["array-location"][0][0]
    with _mc._LOCK:
        r = _mc._predict_rows(_working_copy(model), np.asarray(block), first, plan, return_samples)
    cols = [r.mean, r.variance, r.entropy[:, None], r.mutual_information[:, None]]
    if return_samples:
        cols.append(r.samples.transpose(1, 0, 2).reshape(len(r.mean), -1))
    return np.concatenate(cols, axis=1)


def mc_predict(
    model,
    x: "da.Array",
    samples: int = 30,
    batch_size: int | None = None,
    generator: Generator | None = None,
    return_samples: bool = False,
) -> DaskMCPrediction:
    """Lazy :func:`dropcore.mc.predict` over a Dask array of inputs chunked along rows.

    Args:
        model: a classifier returning logits (B, C); copied now (later changes to it do
            not reach the graph) and sent to each worker once, by pickle.
        x: the inputs (N, ...), a ``dask.array.Array`` (chunks along dims other than 0
            are merged: a row is predicted whole); cast to the model's dtype.
        samples, batch_size, return_samples: as for :func:`dropcore.mc.predict`.
        generator: the :class:`dropcore.Generator` the masks come from (default: the
            global one); it advances now by the words of the whole prediction.

    Returns:
        A :class:`DaskMCPrediction`. Its ``compute()`` equals
        ``mc.predict(model, x.compute(), samples, batch_size, generator)`` bit for bit
        whatever the chunking and the number of workers (masks always; the floating
        point too when the BLAS runs with the same number of threads where
        ``mc.predict`` runs: workers of ``dask.distributed`` use 1). Rows are predicted
        in forwards of a fixed number of inputs aligned to the whole batch
        (:func:`dropcore.mc.predict`'s blocks), so chunks whose row counts are
        multiples of that number waste nothing on padding.

    Example:
        >>> r = dropcore.dask.mc_predict(model, da.from_array(x, chunks=(1000, -1)), samples=30,
        ...                              generator=dropcore.Generator(0))
        >>> r.compute().mutual_information
    """
    samples = _mc._check_arguments(samples, batch_size, generator)
    if not isinstance(x, da.Array):
        raise TypeError(f"x must be a dask.array.Array (use dropcore.mc.predict for arrays), but got {type(x).__name__}")
    if x.ndim < 1:
        raise ValueError("x must have a batch dimension, but got a scalar")
    if any(math.isnan(c) for c in x.chunks[0]):
        raise ValueError("x has unknown chunk sizes; call x.compute_chunk_sizes() first")
    params = [p._data.dtype for p in model.parameters()]
    if params and x.dtype != params[0]:
        x = x.astype(params[0])
    if x.ndim > 1 and any(len(c) > 1 for c in x.chunks[1:]):
        x = x.rechunk({d: -1 for d in range(1, x.ndim)})
    example = np.zeros((1, *x.shape[1:]), x.dtype)
    plan = _mc._plan(model, example, x.shape[0], samples, batch_size, generator)
    shipped = dask.delayed(copy.deepcopy(model), pure=False)
    width = 2 * plan.classes + 2 + (samples * plan.classes if return_samples else 0)
    axes = {"new_axis": [1]} if x.ndim == 1 else {"drop_axis": list(range(2, x.ndim))} if x.ndim > 2 else {}
    packed = da.map_blocks(
        _mc_block, x, shipped, plan, bool(return_samples), _builder(),
        dtype=x.dtype, chunks=(x.chunks[0], (width,)), token="dropcore-mc-predict", **axes,
    )
    c = plan.classes
    return DaskMCPrediction(
        packed[:, :c],
        packed[:, c : 2 * c],
        packed[:, 2 * c],
        packed[:, 2 * c + 1],
        packed[:, 2 * c + 2 :].reshape(x.shape[0], samples, c).transpose(1, 0, 2) if return_samples else None,
    )
