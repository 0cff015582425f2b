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
from .nn.module import Module
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
    """The dropout family (and any module that sets ``_mc_active``) stays stochastic."""
    return isinstance(m, _DropoutNd) or getattr(m, "_mc_active", False)


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _entropy(p: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return -np.where(p > 0, p * np.log(p), 0.0).sum(axis=-1)


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
        x: the inputs (B, ...), a Tensor or an ndarray.
        samples: number of stochastic passes T.
        batch_size: at most this many rows (T x inputs) per forward; default 32,768.
        generator: draw the dropout masks from this Generator (default: the global
            one); the result is then a function of its state.
        return_samples: also return the (T, B, C) probabilities.

    Every module's ``training`` flag is restored afterwards.
    """
    if samples < 1:
        raise ValueError(f"samples must be at least 1, but got {samples}")
    data = x.data if isinstance(x, Tensor) else np.asarray(x)
    n = data.shape[0]
    rows = batch_size or 32_768
    per_chunk = max(1, rows // samples)
    flags = [(m, m.training) for m in model.modules()]
    default = _random.default_generator
    saved_default = default.get_state()
    if generator is not None:
        default.set_state(generator.get_state())
    try:
        model.eval()
        for m in model.modules():
            if _is_stochastic(m):
                object.__setattr__(m, "training", True)
        probs = []
        with no_grad():
            for start in range(0, n, per_chunk):
                chunk = data[start : start + per_chunk]
                tiled = np.broadcast_to(chunk, (samples, *chunk.shape)).reshape(samples * len(chunk), *chunk.shape[1:])
                logits = model(Tensor(np.ascontiguousarray(tiled))).data
                probs.append(_softmax(logits.reshape(samples, len(chunk), -1)))
    finally:
        for m, mode in flags:
            object.__setattr__(m, "training", mode)
        if generator is not None:
            generator.set_state(default.get_state())
            default.set_state(saved_default)
    p = np.concatenate(probs, axis=1)
    mean = p.mean(axis=0)
    entropy = _entropy(mean)
    mi = np.maximum(entropy - _entropy(p).mean(axis=0), 0.0)
    return MCPrediction(mean, p.var(axis=0), entropy, mi, p if return_samples else None)
