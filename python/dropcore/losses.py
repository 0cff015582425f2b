"""Loss functions with PyTorch's names, arguments, formulas and errors.

Each loss records one node whose backward is the closed-form gradient, computed in the
input's dtype. ``reduction`` is ``'none' | 'mean' | 'sum'`` (KL divergence also takes
``'batchmean'``); the legacy ``size_average``/``reduce`` pair is honoured as in PyTorch.

Cross-entropy and NLL share one rule: with ``q`` the per-class target weights of a row
(one-hot times ``weight``, smoothed, or class probabilities), the row's loss is
``-sum_c q_c log p_c`` and its gradient with respect to the logits is ``p * sum(q) - q``.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from .tensor import Tensor, _as_array, _make_op, _unbroadcast

__all__ = [
    "cross_entropy",
    "nll_loss",
    "mse_loss",
    "l1_loss",
    "smooth_l1_loss",
    "huber_loss",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "kl_div",
    "one_hot",
]


# ----------------------------------------------------------------------------- reductions
def _legacy_reduction(size_average, reduce, reduction: str) -> str:
    """PyTorch's ``_Reduction.legacy_get_string``: the deprecated pair wins when given."""
    if size_average is None and reduce is None:
        return reduction
    size_average = True if size_average is None else size_average
    reduce = True if reduce is None else reduce
    out = "mean" if size_average and reduce else ("sum" if reduce else "none")
    warnings.warn(f"size_average and reduce args will be deprecated, please use reduction='{out}' instead.",
                  UserWarning, stacklevel=3)
    return out


def _reduce(loss: np.ndarray, reduction: str):
    """``(reduced loss, scale)``: the gradient of a reduced loss is ``g * scale`` per element
    (``scale`` is None for ``'none'``, where the incoming gradient already has ``loss``'s shape)."""
    if reduction == "mean":
        return loss.mean(dtype=loss.dtype), 1.0 / max(loss.size, 1)
    if reduction == "sum":
        return loss.sum(dtype=loss.dtype), 1.0
    if reduction == "none":
        return loss, None
    raise ValueError(f"{reduction} is not a valid value for reduction")


def _check_reduction(reduction: str, allowed=("none", "mean", "sum")) -> None:
    if reduction not in allowed:
        raise ValueError(f"{reduction} is not a valid value for reduction")


def _grad_array(g: np.ndarray, scale, dtype) -> np.ndarray:
    """The incoming gradient as a per-element factor (broadcastable to the loss elements)."""
    return np.asarray(g if scale is None else g * scale, dtype=dtype)


# ----------------------------------------------------------------------------- class targets
def _classes_last(z: np.ndarray) -> tuple[np.ndarray, tuple[int, ...]]:
    """(N, C, d1, ...) or (C,) -> rows (M, C) and the batch shape (N, d1, ...)."""
    if z.ndim == 0:
        raise ValueError("input must have at least 1 dimension (the classes), but got a 0-d tensor")
    if z.ndim == 1:
        return z[None, :], ()
    moved = np.moveaxis(z, 1, -1)
    return moved.reshape(-1, z.shape[1]), moved.shape[:-1]


def _classes_back(rows: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """The inverse of :func:`_classes_last` for an array of ``shape``."""
    if len(shape) == 1:
        return rows.reshape(shape)
    moved = rows.reshape(shape[:1] + shape[2:] + shape[1:2])
    return np.moveaxis(moved, -1, 1)


def _weight_array(weight, c: int, dtype) -> np.ndarray | None:
    if weight is None:
        return None
    w = np.asarray(_as_array(weight), dtype=dtype)
    if w.shape != (c,):
        raise RuntimeError(f"weight tensor should be defined either for all {c} classes or no classes but got weight tensor of shape: {list(w.shape)}")
    return w


def _class_rule(logp: np.ndarray, target, batch_shape, weight, ignore_index: int, label_smoothing: float,
                input_shape) -> tuple[np.ndarray, Any, Any]:
    """Per-row losses, the 'mean' denominator and a builder of the (M, C) target weights ``q``.

    ``logp`` holds log-probabilities as rows (M, C). ``target`` is class indices of the
    batch shape, or class probabilities of the input's shape (float dtype).
    """
    m, c = logp.shape
    dtype = logp.dtype
    t = np.asarray(_as_array(target))
    w = _weight_array(weight, c, dtype)
    eps = float(label_smoothing)
    if not 0.0 <= eps <= 1.0:
        raise ValueError(f"label_smoothing must be between 0.0 and 1.0. Got: {label_smoothing}")
    if t.dtype.kind == "f":  # class probabilities
        if t.shape != tuple(input_shape):
            raise ValueError(f"Expected target of shape {tuple(input_shape)} (class probabilities), but got {t.shape}")
        q = _classes_last(t.astype(dtype, copy=False))[0]
        if eps:
            q = q * (1 - eps) + eps / c
        if w is not None:
            q = q * w
        per = -(q * np.where(q != 0, logp, 0)).sum(axis=1)
        return per.astype(dtype, copy=False), m, lambda: q
    if t.dtype.kind not in "iu":
        raise TypeError(f"target must hold integer class indices or float class probabilities, but got dtype {t.dtype}")
    if t.shape != tuple(batch_shape):
        if len(batch_shape) == 1 and t.ndim == 1:
            raise ValueError(f"Expected input batch_size ({batch_shape[0]}) to match target batch_size ({t.shape[0]}).")
        raise ValueError(f"target shape {t.shape} does not match the input's batch shape {tuple(batch_shape)}")
    tt = t.reshape(-1).astype(np.int64, copy=False)
    valid = tt != ignore_index
    bad = valid & ((tt < 0) | (tt >= c))
    if bad.any():
        raise IndexError(f"Target {int(tt[bad][0])} is out of bounds.")
    safe = np.where(valid, tt, 0)
    rows = np.arange(m)
    wt = (w[safe] if w is not None else np.ones(m, dtype)) * valid
    per = -(1 - eps) * wt * logp[rows, safe]
    if eps:
        smooth = -(logp * w).sum(axis=1) if w is not None else -logp.sum(axis=1)
        per = per + (eps / c) * np.where(valid, smooth, 0)
    denom = wt.sum(dtype=np.float64)

    def q_rows():
        q = np.zeros((m, c), dtype)
        q[rows, safe] = (1 - eps) * wt
        if eps:
            q += (eps / c) * (w if w is not None else 1) * valid[:, None]
        return q

    return per.astype(dtype, copy=False), denom, q_rows


def _class_reduce(per: np.ndarray, denom, reduction: str, batch_shape):
    """Reduce per-row losses; returns (value, gradient factor per row given the upstream g)."""
    if reduction == "none":
        return per.reshape(batch_shape), lambda g: np.asarray(g, per.dtype).reshape(-1)
    if reduction == "sum":
        return per.sum(dtype=per.dtype), lambda g: np.full(per.shape, g, per.dtype)
    with np.errstate(invalid="ignore", divide="ignore"):  # every target ignored -> nan, as PyTorch
        value = per.dtype.type(per.sum(dtype=np.float64) / denom)
    # g * (1 / denom), not g / denom: the reference-training test (tensor helper) tracks this rounding.
    return value, lambda g: np.full(per.shape, np.asarray(g, per.dtype) * float(1.0 / denom) if denom else np.nan, per.dtype)


def _cross_entropy_plain(input: Tensor, z: np.ndarray, target, ignore_index: int, reduction: str):
    """:func:`cross_entropy` of ``(N, C)`` logits at in-range class indices ``(N,)``, none
    ignored, no weight, no smoothing, ``'mean'`` or ``'sum'``: the general rule's values
    and gradient bit for bit (the same NumPy operations on the same arrays; the target
    weights are all 1, so ``q`` is one-hot and ``p * sum(q) - q`` is ``p`` minus 1 at the
    target) without its bookkeeping. None when the case is not that one."""
    t = target._data if isinstance(target, Tensor) else target
    m, c = z.shape
    if not isinstance(t, np.ndarray) or t.dtype.kind not in "iu" or t.shape != (m,) or m == 0 or z.dtype.kind != "f":
        return None
    if t.min() < 0 or t.max() >= c or (0 <= ignore_index < c and (t == ignore_index).any()):
        return None  # the general path raises (out of range) or skips (ignored) as documented
    shifted = z - z.max(axis=1, keepdims=True)
    logp = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    rows = np.arange(m)
    per = z.dtype.type(-1.0) * logp[rows, t]  # as -(1 - eps) * weight * logp with weight 1
    if reduction == "mean":
        value = z.dtype.type(per.sum(dtype=np.float64) / np.float64(m))
    else:
        value = per.sum(dtype=per.dtype)

    def backward(g):
        gz = np.exp(logp)
        gz[rows, t] -= 1
        gz *= np.asarray(g, z.dtype) * float(1.0 / m) if reduction == "mean" else np.asarray(g, z.dtype)
        return (gz,)

    return _make_op(np.asarray(value), (input,), backward, "CrossEntropyLossBackward0")


def cross_entropy(
    input: Tensor,
    target,
    weight=None,
    size_average=None,
    ignore_index: int = -100,
    reduce=None,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Tensor:
    """Cross-entropy between logits and targets (log-softmax + NLL as one node).

    Args:
        input: logits ``(N, C)``, ``(C,)`` or ``(N, C, d1, ...)``.
        target: class indices of shape ``(N,)`` / ``()`` / ``(N, d1, ...)``, or class
            probabilities (a float array of the input's shape).
        weight: per-class rescaling weights ``(C,)``.
        ignore_index: index targets equal to it contribute nothing (nor to the mean).
        reduction: ``'none' | 'mean' | 'sum'``; ``'mean'`` divides by the summed
            weights of the non-ignored targets (by the number of rows for probabilities).
        label_smoothing: ``eps`` in [0, 1]: the target becomes ``(1 - eps) * target + eps / C``.

    Example:
        >>> z = dropcore.tensor([[2.0, 0.5, -1.0]], requires_grad=True)
        >>> F.cross_entropy(z, np.array([0]))    # -log softmax(z)[0, 0]
    """
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_reduction(reduction)
    z = input._data
    if weight is None and not label_smoothing and reduction != "none" and z.ndim == 2:
        plain = _cross_entropy_plain(input, z, target, ignore_index, reduction)
        if plain is not None:
            return plain
    rows, batch_shape = _classes_last(z)
    shifted = rows - rows.max(axis=1, keepdims=True)
    logp = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    per, denom, q_rows = _class_rule(logp, target, batch_shape, weight, ignore_index, label_smoothing, z.shape)
    value, row_grad = _class_reduce(per, denom, reduction, batch_shape)
    # Probability targets that require grad get one too: d loss / d target = -(1 - eps) w log p.
    parents = (input, target) if isinstance(target, Tensor) and target._data.dtype.kind == "f" else (input,)

    def backward(g):
        q = q_rows()
        rg = row_grad(g)[:, None]
        gz = (np.exp(logp) * q.sum(axis=1, keepdims=True) - q) * rg
        grads = (_classes_back(gz.astype(z.dtype, copy=False), z.shape),)
        if len(parents) == 2:
            w = _weight_array(weight, z.shape[0] if z.ndim == 1 else z.shape[1], z.dtype)
            gt = -(1 - float(label_smoothing)) * logp * (1 if w is None else w) * rg
            grads += (_classes_back(gt.astype(target._data.dtype, copy=False), z.shape),)
        return grads

    return _make_op(np.asarray(value), parents, backward, "CrossEntropyLossBackward0")


def nll_loss(
    input: Tensor,
    target,
    weight=None,
    size_average=None,
    ignore_index: int = -100,
    reduce=None,
    reduction: str = "mean",
) -> Tensor:
    """Negative log-likelihood of log-probabilities ``(N, C)`` (or ``(C,)``, ``(N, C, d1, ...)``)
    at class indices; ``weight``, ``ignore_index`` and ``'mean'`` as in :func:`cross_entropy`."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_reduction(reduction)
    x = input._data
    rows, batch_shape = _classes_last(x)
    t = np.asarray(_as_array(target))
    if t.dtype.kind not in "iu":
        raise TypeError(f"nll_loss expects integer class indices as target, but got dtype {t.dtype}")
    per, denom, q_rows = _class_rule(rows, t, batch_shape, weight, ignore_index, 0.0, x.shape)
    value, row_grad = _class_reduce(per, denom, reduction, batch_shape)

    def backward(g):
        gx = -q_rows() * row_grad(g)[:, None]
        return (_classes_back(gx.astype(x.dtype, copy=False), x.shape),)

    return _make_op(np.asarray(value), (input,), backward, "NllLossBackward0")


# ----------------------------------------------------------------------------- regression
def _size_warning(a_shape, b_shape) -> None:
    warnings.warn(
        f"Using a target size ({tuple(b_shape)}) that is different to the input size ({tuple(a_shape)}). "
        "This will likely lead to incorrect results due to broadcasting. Please ensure they have the same size.",
        UserWarning,
        stacklevel=3,
    )


def _pointwise(input: Tensor, target, reduction: str, fn, op: str, weight=None) -> Tensor:
    """A loss of ``d = input - target`` element by element: ``fn(d) -> (loss, dloss/dd)``.

    Shapes that differ broadcast after PyTorch's warning; ``weight`` (input's shape)
    multiplies each element and ``'mean'`` then divides by ``weight.sum()``.
    """
    _check_reduction(reduction)
    a = input._data
    b = _as_array(target)
    if np.shape(b) != a.shape:
        _size_warning(a.shape, np.shape(b))
    d = np.asarray(a - b).astype(a.dtype, copy=False)
    loss, dloss = fn(d)
    if weight is not None:
        w = np.asarray(_as_array(weight), dtype=a.dtype)
        if w.shape != a.shape:
            raise ValueError("Weights and input must have the same size.")
        loss, dloss = loss * w, dloss * w
        if reduction == "mean":
            total = w.sum(dtype=w.dtype)
            value, scale = loss.sum(dtype=loss.dtype) / total, 1.0 / total
        else:
            value, scale = _reduce(loss, reduction)
    else:
        value, scale = _reduce(loss, reduction)
    parents = (input, target) if isinstance(target, Tensor) else (input,)
    b_shape = np.shape(b)

    def backward(g):
        gd = (dloss * _grad_array(g, scale, a.dtype)).astype(a.dtype, copy=False)
        ga = _unbroadcast(gd, a.shape)
        return (ga, _unbroadcast(-gd, b_shape)) if len(parents) == 2 else (ga,)

    return _make_op(np.asarray(value, dtype=a.dtype), parents, backward, op)


def mse_loss(input: Tensor, target, size_average=None, reduce=None, reduction: str = "mean", weight=None) -> Tensor:
    """Mean squared error ``(input - target)^2``, reduced."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    return _pointwise(input, target, reduction, lambda d: (d * d, 2 * d), "MseLossBackward0", weight)


def l1_loss(input: Tensor, target, size_average=None, reduce=None, reduction: str = "mean", weight=None) -> Tensor:
    """Mean absolute error ``|input - target|`` (gradient ``sign(d)``, 0 at 0 as in PyTorch)."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    return _pointwise(input, target, reduction, lambda d: (np.abs(d), np.sign(d)), "L1LossBackward0", weight)


def smooth_l1_loss(input: Tensor, target, size_average=None, reduce=None, reduction: str = "mean",
                   beta: float = 1.0) -> Tensor:
    """``0.5 d^2 / beta`` where ``|d| < beta``, else ``|d| - 0.5 beta`` (Girshick 2015); beta=0 is L1."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    if beta < 0:
        raise RuntimeError("smooth_l1_loss does not support negative values for beta.")

    def fn(d):
        ad = np.abs(d)
        if beta == 0:
            return ad, np.sign(d)
        small = ad < beta
        return np.where(small, 0.5 * d * d / beta, ad - 0.5 * beta), np.where(small, d / beta, np.sign(d))

    return _pointwise(input, target, reduction, fn, "SmoothL1LossBackward0")


def huber_loss(input: Tensor, target, reduction: str = "mean", delta: float = 1.0, weight=None) -> Tensor:
    """``0.5 d^2`` where ``|d| < delta``, else ``delta (|d| - 0.5 delta)`` (Huber 1964)."""
    if delta <= 0:
        raise RuntimeError("huber_loss does not support non-positive values for delta.")

    def fn(d):
        ad = np.abs(d)
        small = ad < delta
        return np.where(small, 0.5 * d * d, delta * (ad - 0.5 * delta)), np.where(small, d, delta * np.sign(d))

    return _pointwise(input, target, reduction, fn, "HuberLossBackward0", weight)


# ----------------------------------------------------------------------------- binary targets
def _same_shape_target(a: np.ndarray, b: np.ndarray, message: str) -> None:
    if np.shape(b) != a.shape:
        raise ValueError(message.format(tuple(np.shape(b)), a.shape))


def _elementwise_loss(input: Tensor, target, loss: np.ndarray, d_input: np.ndarray, d_target, reduction: str,
                      op: str) -> Tensor:
    """Reduce an element-wise loss and record its node (gradients given per element)."""
    a = input._data
    value, scale = _reduce(loss.astype(a.dtype, copy=False), reduction)
    parents = (input, target) if isinstance(target, Tensor) else (input,)

    def backward(g):
        f = _grad_array(g, scale, a.dtype)
        gi = (d_input * f).astype(a.dtype, copy=False)
        if len(parents) == 1:
            return (gi,)
        return gi, (d_target() * f).astype(a.dtype, copy=False)

    return _make_op(np.asarray(value, dtype=a.dtype), parents, backward, op)


def binary_cross_entropy(input: Tensor, target, weight=None, size_average=None, reduce=None,
                         reduction: str = "mean") -> Tensor:
    """``-w (y log x + (1 - y) log(1 - x))`` of probabilities ``x`` in [0, 1].

    Each log is clamped at -100 and the gradient's denominator ``x (1 - x)`` at 1e-12,
    as in PyTorch, so ``x`` of exactly 0 or 1 gives finite values.
    """
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_reduction(reduction)
    x = input._data
    y = np.asarray(_as_array(target), dtype=x.dtype)
    _same_shape_target(x, y, "Using a target size ({}) that is different to the input size ({}) is deprecated. "
                             "Please ensure they have the same size.")
    if x.size and not ((x >= 0) & (x <= 1)).all():
        raise RuntimeError("all elements of input should be between 0 and 1")
    w = None if weight is None else np.asarray(_as_array(weight), dtype=x.dtype)
    with np.errstate(divide="ignore"):
        log_x = np.maximum(np.log(x), -100)
        log_1mx = np.maximum(np.log1p(-x), -100)
    loss = -(y * log_x + (1 - y) * log_1mx)
    d_in = (x - y) / np.maximum((1 - x) * x, 1e-12)
    d_tg = lambda: log_1mx - log_x  # noqa: E731
    if w is not None:
        loss, d_in = loss * w, d_in * w
        d_tg = lambda: (log_1mx - log_x) * w  # noqa: E731
    return _elementwise_loss(input, target, loss, d_in, d_tg, reduction, "BinaryCrossEntropyBackward0")


def _softplus(x: np.ndarray) -> np.ndarray:
    """``log(1 + exp(x))`` without overflow."""
    return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))


def binary_cross_entropy_with_logits(input: Tensor, target, weight=None, size_average=None, reduce=None,
                                     reduction: str = "mean", pos_weight=None) -> Tensor:
    """Sigmoid + binary cross-entropy in one stable node.

    ``l = w [(1 - y) x + (1 + (pw - 1) y) softplus(-x)]``, which equals
    ``-w [pw y log sigmoid(x) + (1 - y) log(1 - sigmoid(x))]``; ``pos_weight`` (``pw``)
    broadcasts against the last dimension (the classes).
    """
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_reduction(reduction)
    x = input._data
    y = np.asarray(_as_array(target), dtype=x.dtype)
    _same_shape_target(x, y, "Target size ({}) must be the same as input size ({})")
    sp_neg = _softplus(-x)
    e = np.exp(-np.abs(x))
    sig = np.where(x >= 0, 1 / (1 + e), e / (1 + e))
    if pos_weight is None:
        loss = (1 - y) * x + sp_neg
        d_in = sig - y
        d_tg = lambda: -x  # noqa: E731
    else:
        pw = np.asarray(_as_array(pos_weight), dtype=x.dtype)
        coef = 1 + (pw - 1) * y
        loss = (1 - y) * x + coef * sp_neg
        d_in = coef * sig - pw * y
        d_tg = lambda: -x + (pw - 1) * sp_neg  # noqa: E731
    if weight is not None:
        w = np.asarray(_as_array(weight), dtype=x.dtype)
        loss, d_in = loss * w, d_in * w
        d_tg0 = d_tg
        d_tg = lambda: d_tg0() * w  # noqa: E731
    loss = np.broadcast_to(loss, x.shape)
    return _elementwise_loss(input, target, loss, d_in, d_tg, reduction, "BinaryCrossEntropyWithLogitsBackward0")


def kl_div(input: Tensor, target, size_average=None, reduce=None, reduction: str = "mean",
           log_target: bool = False) -> Tensor:
    """KL divergence ``target * (log target - input)`` with ``input`` given as log-probabilities.

    ``reduction='batchmean'`` divides the sum by the batch size (the mathematical KL);
    ``'mean'`` (the default, as in PyTorch) divides by the number of elements and warns.
    With ``log_target=True`` the target is log-probabilities too.
    """
    if size_average is not None or reduce is not None:
        reduction = _legacy_reduction(size_average, reduce, reduction)
    elif reduction == "mean":
        warnings.warn(
            "reduction: 'mean' divides the total loss by both the batch size and the support size."
            "'batchmean' divides only by the batch size, and aligns with the KL div math definition."
            "'mean' will be changed to behave the same as 'batchmean' in the next major release.",
            UserWarning,
            stacklevel=2,
        )
    _check_reduction(reduction, ("none", "mean", "sum", "batchmean"))
    x = input._data
    t = np.asarray(_as_array(target), dtype=x.dtype)
    if log_target:
        et = np.exp(t)
        loss = et * (t - x)
        d_in = -et
        d_tg = lambda: et * (t - x + 1)  # noqa: E731
    else:
        with np.errstate(divide="ignore", invalid="ignore"):  # 0 log 0 is taken as 0
            log_t = np.log(t)
            loss = np.where(t > 0, t * log_t, 0) - t * x
        d_in = -t
        d_tg = lambda: log_t + 1 - x  # noqa: E731
    loss = np.broadcast_to(loss, np.broadcast_shapes(x.shape, t.shape))
    if reduction == "batchmean":
        out = _elementwise_loss(input, target, loss, d_in, d_tg, "sum", "KlDivBackward0")
        return out / x.shape[0] if x.ndim else out
    return _elementwise_loss(input, target, loss, d_in, d_tg, reduction, "KlDivBackward0")


# ----------------------------------------------------------------------------- encodings
def one_hot(tensor, num_classes: int = -1) -> Tensor:
    """Class indices of any shape -> int64 ``(*shape, num_classes)`` with a 1 at each index.

    ``num_classes=-1`` uses ``max + 1``. Like PyTorch, negative or too large indices
    raise RuntimeError, and only integer tensors are accepted.
    """
    t = np.asarray(_as_array(tensor))
    if t.dtype.kind not in "iu":
        raise RuntimeError("one_hot is only applicable to index tensor of type LongTensor.")
    if t.size and t.min() < 0:
        raise RuntimeError("Class values must be non-negative.")
    if num_classes == -1:
        if t.size == 0:
            raise RuntimeError("Can not infer total number of classes from empty tensor.")
        num_classes = int(t.max()) + 1
    elif num_classes < -1:
        raise RuntimeError("num_classes should be positive")
    elif t.size and t.max() >= num_classes:
        raise RuntimeError("Class values must be smaller than num_classes.")
    out = np.zeros(t.shape + (num_classes,), np.int64)
    np.put_along_axis(out, t[..., None].astype(np.int64), 1, axis=-1)
    return Tensor(out)
