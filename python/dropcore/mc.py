"""Monte Carlo dropout prediction (Gal & Ghahramani 2016).

Keeping dropout on at test time and averaging ``T`` stochastic passes approximates
the predictive distribution of a Bayesian network; the spread of the passes measures
the model's uncertainty. :func:`predict` runs the ``T`` passes of a batch as one
large batch (the input tiled ``T`` times), so the work is a few big GEMMs and big
parallel dropout calls instead of a Python loop over samples.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import random as _random
from .nn.dropout import _DropoutNd
from .nn.module import Module, Sequential
from .tensor import Tensor, no_grad

__all__ = ["MCPrediction", "predict"]


@dataclass
class MCPrediction:
    """What :func:`predict` returns; every field is an ndarray over the input batch.

    Attributes:
        mean: (B, C) mean class probabilities over the samples.
        variance: (B, C) variance of the class probabilities over the samples.
        entropy: (B,) predictive entropy H[mean] (nats): total uncertainty.
        mutual_information: (B,) BALD: H[mean] - mean_t H[p_t], the part of the
            uncertainty that comes from the model (Houlsby et al. 2011).
        samples: (T, B, C) probabilities of each pass, if requested.
    """

    mean: np.ndarray
    variance: np.ndarray
    entropy: np.ndarray
    mutual_information: np.ndarray
    samples: np.ndarray | None = None

    @property
    def prediction(self) -> np.ndarray:
        """The class with the highest mean probability."""
        return self.mean.argmax(axis=1)


def _is_stochastic(m: Module) -> bool:
    """The dropout family stays stochastic, and so does any module that sets
    ``_mc_active = True`` (DropConnect, user layers); ``_mc_active = False`` opts out."""
    return bool(getattr(m, "_mc_active", isinstance(m, _DropoutNd)))


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _entropy(p: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return -np.where(p > 0, p * np.log(p), 0.0).sum(axis=-1)


def _split_at_first_stochastic(model: Module) -> tuple[list[Module], list[Module]]:
    """``(prefix, rest)`` of a plain Sequential: the leading children without a stochastic
    module compute the same thing in every pass, so they run once per input and only
    their output is tiled (for d2l's MLP the first Linear is 3/4 of the FLOPs).
    Other models run whole on the tiled input."""
    if not isinstance(model, Sequential) or type(model).forward is not Sequential.forward:
        return [], [model]
    children = list(model)
    k = 0
    while k < len(children) and not any(_is_stochastic(m) for m in children[k].modules()):
        k += 1
    return children[:k], children[k:]


# Default memory budget of one forward: the tiled input of a chunk stays under 64 MiB
# (the hidden activations are of the same order for MLPs), and at most 64K rows.
_TILE_BYTES = 64 << 20
_MAX_ROWS = 65_536


def _default_rows(data: np.ndarray) -> int:
    row_bytes = max(1, int(np.prod(data.shape[1:], dtype=np.int64)) * data.itemsize)
    return int(max(1, min(_MAX_ROWS, _TILE_BYTES // row_bytes)))


def predict(
    model: Module,
    x,
    samples: int = 30,
    batch_size: int | None = None,
    generator: _random.Generator | None = None,
    return_samples: bool = False,
) -> MCPrediction:
    """MC-dropout prediction: ``samples`` stochastic passes with dropout on, BatchNorm off.

    Args:
        model: a classifier returning logits (B, C).
        x: the inputs (B, ...), a Tensor or an ndarray (an ndarray is cast to the
            model's parameter dtype).
        samples: number of stochastic passes T.
        batch_size: at most this many rows (T x inputs) per forward. Default: what
            keeps the tiled input of one forward under 64 MiB (at most 65,536 rows).
        generator: draw the dropout masks from this Generator (default: the global
            one) and advance it by the words used; the result is then a function of
            its state (and of ``batch_size``, which decides the chunks).
        return_samples: also return the (T, B, C) probabilities.

    The passes differ only from the first dropout layer on, so the leading layers of a
    :class:`~dropcore.nn.Sequential` before it run once per input (in eval mode every
    layer there works row by row) and their output is what gets tiled.

    Word layout (what makes a batched run replayable pass by pass): the inputs are cut
    into chunks of ``n = batch_size // T`` inputs; each chunk is tiled sample-major to
    ``(T * n, ...)`` and goes through one forward, in which every dropout layer makes
    one call over its ``(T * n, ...)`` input, so pass ``t`` of that call reads the
    ``t``-th contiguous ``n * features`` words of the layer's range. Dropout modules
    that carry their own generator draw from ``generator`` instead while it is given.
    The global default generator is borrowed for the duration (not thread-safe).

    Every module's ``training`` flag is restored afterwards; all modules other than
    the dropout family run in eval mode (BatchNorm uses its running statistics and
    does not update them).

    Example:
        >>> r = dropcore.mc.predict(model, x_test, samples=30, generator=dropcore.Generator(0))
        >>> r.mean.argmax(1), r.mutual_information   # prediction, model uncertainty
    """
    if isinstance(samples, bool) or not isinstance(samples, (int, np.integer)) or samples < 1:
        raise ValueError(f"samples must be a positive int, but got {samples!r}")
    if batch_size is not None and (isinstance(batch_size, bool) or batch_size < 1):
        raise ValueError(f"batch_size must be a positive int, but got {batch_size!r}")
    if generator is not None and not isinstance(generator, _random.Generator):
        raise TypeError(f"generator must be a dropcore.Generator, but got {type(generator).__name__}")
    samples = int(samples)
    if isinstance(x, Tensor):
        data = x._data
    else:
        data = np.asarray(x)
        params = [p._data.dtype for p in model.parameters()]
        if params and data.dtype != params[0]:
            data = data.astype(params[0])
    if data.ndim < 1:
        raise ValueError("x must have a batch dimension, but got a scalar")
    n = data.shape[0]
    rows = int(batch_size) if batch_size is not None else max(samples, _default_rows(data))
    per_chunk = max(1, rows // samples)  # inputs per forward
    per_pass = samples if per_chunk * samples <= rows else max(1, rows)  # passes per forward

    prefix, rest = _split_at_first_stochastic(model)
    modules = list(model.modules())
    flags = [(m, m.training) for m in modules]
    own_generators = []
    default = _random.default_generator
    saved_default = default.get_state()
    probs = []
    try:
        if generator is not None:
            default.set_state(generator.get_state())
            for m in modules:
                if _is_stochastic(m) and getattr(m, "generator", None) is not None:
                    own_generators.append((m, m.generator))
                    object.__setattr__(m, "generator", None)
        for m in modules:
            object.__setattr__(m, "training", _is_stochastic(m))
        with no_grad():
            for start in range(0, n, per_chunk) if n else [0]:  # an empty batch still gives (T, 0, C)
                chunk = Tensor(data[start : start + per_chunk])
                for m in prefix:
                    chunk = m(chunk)
                h, k = chunk._data, len(chunk._data)
                parts = []
                for t0 in range(0, samples, per_pass):
                    t = min(per_pass, samples - t0)
                    out = Tensor(np.ascontiguousarray(np.broadcast_to(h, (t, *h.shape)).reshape(t * k, *h.shape[1:])))
                    for m in rest:
                        out = m(out)
                    logits = out._data
                    parts.append(_softmax(logits.reshape(t, k, logits.shape[-1])))
                probs.append(np.concatenate(parts, axis=0))
    finally:
        for m, mode in flags:
            object.__setattr__(m, "training", mode)
        for m, g in own_generators:
            object.__setattr__(m, "generator", g)
        if generator is not None:
            generator.set_state(default.get_state())
            default.set_state(saved_default)
    p = np.concatenate(probs, axis=1)
    mean = p.mean(axis=0)
    entropy = _entropy(mean)
    # H[mean] >= mean H[p_t] by concavity; clip the rounding noise around 0.
    mi = np.maximum(entropy - _entropy(p).mean(axis=0), 0.0)
    return MCPrediction(mean, p.var(axis=0), entropy, mi, p if return_samples else None)
