"""Activation modules and the functional forms of the ones ``dropcore.functional`` lacks.

The rectifiers of the lecture notes (ReLU, LeakyReLU, CReLU), the self-normalising SELU
that AlphaDropout is designed for, ELU, GELU (exact and tanh), SiLU, Softplus and the
squashing functions. Each functional form is one node with its closed-form derivative.
"""

from __future__ import annotations

import math
import warnings
from typing import Callable

import numpy as np

from .. import functional as F
from ..tensor import Tensor, _make_op
from .module import Module

__all__ = [
    "ReLU", "LeakyReLU", "CReLU", "ELU", "SELU", "GELU", "SiLU", "Softplus", "Sigmoid", "Tanh",
    "Softmax", "LogSoftmax",
]
# Functional forms, exported through dropcore.nn.functional.
FUNCTIONS = ["elu", "selu", "gelu", "silu", "softplus"]

# SELU's constants (Klambauer et al. 2017), the ones PyTorch uses.
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


def _elementwise(input: Tensor, out: np.ndarray, deriv: np.ndarray, op: str) -> Tensor:
    """The node ``out = f(input)`` with ``f'(input) = deriv``, in the input's dtype."""
    out = out.astype(input._data.dtype, copy=False)
    deriv = deriv.astype(input._data.dtype, copy=False)
    return _make_op(out, (input,), lambda g: (g * deriv,), op)


def elu(input: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    """``x`` if ``x > 0`` else ``alpha (exp(x) - 1)`` (Clevert et al. 2016).

    ``inplace=True`` overwrites the input with PyTorch's rules (recorded in the graph for
    a non-leaf; refused for a leaf that requires grad while grad mode is on).
    """
    if inplace:
        return input._inplace_from(lambda t: elu(t, alpha))
    x = input._data
    em1 = np.expm1(np.minimum(x, 0))
    pos = x > 0
    return _elementwise(input, np.where(pos, x, alpha * em1), np.where(pos, 1.0, alpha * (em1 + 1)), "EluBackward0")


def selu(input: Tensor, inplace: bool = False) -> Tensor:
    """``scale * elu(x, alpha)`` with Klambauer et al.'s fixed point constants."""
    if inplace:
        return input._inplace_from(selu)
    x = input._data
    em1 = np.expm1(np.minimum(x, 0))
    pos = x > 0
    out = SELU_SCALE * np.where(pos, x, SELU_ALPHA * em1)
    deriv = SELU_SCALE * np.where(pos, 1.0, SELU_ALPHA * (em1 + 1))
    return _elementwise(input, out, deriv, "EluBackward0")


def _erfc(u: np.ndarray) -> np.ndarray:
    """``erfc(u)`` in float64 to about 1e-13 relative, vectorised (NumPy has no erf).

    ``|u| < 2``: ``erf(u) = 2/sqrt(pi) exp(-u^2) sum_n 2^n u^(2n+1) / (2n+1)!!``, a series of
    positive terms (no cancellation; 45 terms reach double precision). ``u >= 2``: the
    continued fraction ``erfc(u) = exp(-u^2) / sqrt(pi) / (u + (1/2)/(u + 1/(u + (3/2)/(u + ...))))``
    evaluated bottom-up from depth 60, with ``exp(-u^2)`` split so its argument is exact.
    ``u <= -2`` uses ``erfc(u) = 2 - erfc(-u)``.
    """
    u = np.asarray(u, np.float64)
    out = np.empty_like(u)
    small = np.abs(u) < 2
    us = u[small]
    u2 = us * us
    term = us.copy()
    total = us.copy()
    for n in range(45):
        term = term * (2 * u2 / (2 * n + 3))
        total += term
    out[small] = 1 - 2 / math.sqrt(math.pi) * np.exp(-u2) * total
    big = ~small
    a = np.abs(u[big])
    frac = a.copy()
    for k in range(60, 0, -1):
        frac = a + (k / 2) / frac
    hi = a.astype(np.float32).astype(np.float64)  # hi*hi is exact; u^2 = hi^2 + (a-hi)(a+hi)
    tail = np.exp(-hi * hi) * np.exp(-(a - hi) * (a + hi)) / (math.sqrt(math.pi) * frac)
    out[big] = np.where(u[big] > 0, tail, 2 - tail)
    return out


def gelu(input: Tensor, approximate: str = "none") -> Tensor:
    """Gaussian Error Linear Unit (Hendrycks & Gimpel 2016): ``x * Phi(x)``.

    Args:
        approximate: ``'none'`` (exact normal CDF) or ``'tanh'``
            (``0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))``).
    """
    x = input._data
    if approximate == "none":
        x64 = x.astype(np.float64, copy=False)
        cdf = 0.5 * _erfc(-x64 / math.sqrt(2))
        pdf = np.exp(-0.5 * x64 * x64) / math.sqrt(2 * math.pi)
        return _elementwise(input, x64 * cdf, cdf + x64 * pdf, "GeluBackward0")
    if approximate == "tanh":
        k = math.sqrt(2 / math.pi)
        inner = k * (x + 0.044715 * x**3)
        t = np.tanh(inner)
        deriv = 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * k * (1 + 3 * 0.044715 * x * x)
        return _elementwise(input, 0.5 * x * (1 + t), deriv, "GeluBackward0")
    raise RuntimeError(f"approximate argument must be either none or tanh, but got {approximate!r}")


def _sigmoid(x: np.ndarray) -> np.ndarray:
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def silu(input: Tensor, inplace: bool = False) -> Tensor:
    """``x * sigmoid(x)`` (the swish of Ramachandran et al. 2017)."""
    if inplace:
        return input._inplace_from(silu)
    x = input._data
    s = _sigmoid(x)
    return _elementwise(input, x * s, s * (1 + x * (1 - s)), "SiluBackward0")


def softplus(input: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    """``log(1 + exp(beta x)) / beta``, linear where ``beta x > threshold`` (as PyTorch)."""
    x = input._data
    bx = beta * x
    linear = bx > threshold
    out = np.where(linear, x, (np.maximum(bx, 0) + np.log1p(np.exp(-np.abs(bx)))) / beta)
    return _elementwise(input, out, np.where(linear, 1.0, _sigmoid(bx)), "SoftplusBackward0")


class ReLU(Module):
    """``max(0, x)`` (Nair & Hinton 2010)."""

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = inplace

    def forward(self, input: Tensor) -> Tensor:
        return F.relu(input)

    def extra_repr(self) -> str:
        return "inplace=True" if self.inplace else ""


class LeakyReLU(Module):
    """``x`` if ``x > 0`` else ``negative_slope * x`` (Maas et al. 2013)."""

    def __init__(self, negative_slope: float = 0.01, inplace: bool = False) -> None:
        super().__init__()
        self.negative_slope, self.inplace = negative_slope, inplace

    def forward(self, input: Tensor) -> Tensor:
        return F.leaky_relu(input, self.negative_slope)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}" + (", inplace=True" if self.inplace else "")


class CReLU(Module):
    """Concatenated ReLU (Shang et al. 2016): ``cat([relu(x), relu(-x)], dim=1)`` doubles dim 1."""

    def forward(self, input: Tensor) -> Tensor:
        return F.crelu(input, 1)


class _InplaceActivation(Module):
    """An activation whose only option is ``inplace`` (PyTorch's repr: ``inplace=True`` when set)."""

    _function: Callable[..., Tensor]

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = inplace

    def forward(self, input: Tensor) -> Tensor:
        return self._function(input, inplace=self.inplace)

    def extra_repr(self) -> str:
        return "inplace=True" if self.inplace else ""


class ELU(Module):
    """Exponential Linear Unit: ``x`` if ``x > 0`` else ``alpha (exp(x) - 1)``.

    Args:
        alpha: the value approached for large negative inputs. Default: 1.0.
        inplace: overwrite the input (PyTorch's in-place rules). Default: False.
    """

    def __init__(self, alpha: float = 1.0, inplace: bool = False) -> None:
        super().__init__()
        self.alpha, self.inplace = alpha, inplace

    def forward(self, input: Tensor) -> Tensor:
        return elu(input, self.alpha, self.inplace)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}" + (", inplace=True" if self.inplace else "")


class SELU(_InplaceActivation):
    """Scaled ELU (Klambauer et al. 2017), the activation AlphaDropout is designed for.

    ``scale * (max(0, x) + min(0, alpha (exp(x) - 1)))`` with alpha = 1.6732632423543772
    and scale = 1.0507009873554805, so zero-mean unit-variance activations stay so.

    Examples:
        >>> net = nn.Sequential(nn.Linear(20, 20), nn.SELU(), nn.AlphaDropout(0.1))
    """

    _function = staticmethod(selu)


class GELU(Module):
    """Gaussian Error Linear Unit ``x * Phi(x)``; ``approximate='tanh'`` for the tanh form."""

    def __init__(self, approximate: str = "none") -> None:
        super().__init__()
        self.approximate = approximate

    def forward(self, input: Tensor) -> Tensor:
        return gelu(input, self.approximate)

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}"


class SiLU(_InplaceActivation):
    """``x * sigmoid(x)``."""

    _function = staticmethod(silu)


class Softplus(Module):
    """``log(1 + exp(beta x)) / beta`` (linear above ``threshold``)."""

    def __init__(self, beta: float = 1.0, threshold: float = 20.0) -> None:
        super().__init__()
        self.beta, self.threshold = beta, threshold

    def forward(self, input: Tensor) -> Tensor:
        return softplus(input, self.beta, self.threshold)

    def extra_repr(self) -> str:
        return f"beta={self.beta}, threshold={self.threshold}"


class Sigmoid(Module):
    def forward(self, input: Tensor) -> Tensor:
        return input.sigmoid()


class Tanh(Module):
    def forward(self, input: Tensor) -> Tensor:
        return input.tanh()


def _implicit_dim(name: str, ndim: int) -> int:
    """PyTorch's choice (and warning) when ``dim`` is not given: 0 for 0-, 1- and 3-D input, else 1."""
    warnings.warn(f"Implicit dimension choice for {name} has been deprecated. "
                  "Change the call to include dim=X as an argument.", UserWarning, stacklevel=4)
    return 0 if ndim in (0, 1, 3) else 1


class Softmax(Module):
    """``exp(x) / sum(exp(x))`` along ``dim`` (PyTorch's default ``dim=None`` warns and infers it)."""

    def __init__(self, dim: int | None = None) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, input: Tensor) -> Tensor:
        dim = _implicit_dim("softmax", input.ndim) if self.dim is None else self.dim
        return input.softmax(dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class LogSoftmax(Softmax):
    """``log(softmax(x))`` along ``dim``, computed stably."""

    def forward(self, input: Tensor) -> Tensor:
        dim = _implicit_dim("log_softmax", input.ndim) if self.dim is None else self.dim
        return input.log_softmax(dim)
