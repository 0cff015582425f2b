"""Monte Carlo dropout prediction (Gal & Ghahramani 2016).

Keeping dropout on at test time and averaging ``T`` stochastic passes approximates
the predictive distribution of a Bayesian network; the spread of the passes measures
the model's uncertainty. :func:`predict` runs the ``T`` passes of many inputs as one
large batch (each input repeated ``T`` times), so the work is a few big GEMMs and big
parallel dropout calls instead of a Python loop over samples.

Word layout. The masks of input ``r`` (its index in the whole batch) in pass ``t`` are
a pure function of ``(seed, offset, r, t)``, whatever the chunking: the
``k``-th stochastic call of a forward reads ``q_k`` half-words (SPEC §2) per row of its
input, and the rows are ordered input-major, so input ``r``, pass ``t`` of call ``k``
reads half-words ``2 * base_k + (r * passes + t) * q_k`` onward, with
``base_k = offset + rows * passes * (q_0 + ... + q_{k-1}) / 2``. A forward over inputs
``r0 .. r1`` is then one contiguous range per call, which is why a row slice of the
batch (``batch_size``, a Dask chunk: :mod:`dropcore.dask`) reproduces exactly the
masks the whole-batch run gives those rows.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator

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


def _statistics(p: np.ndarray, return_samples: bool) -> MCPrediction:
    """Mean, variance, entropy and BALD of the (T, B, C) probabilities; row by row, so
    a slice of the rows gives the same bits as the whole."""
    mean = p.mean(axis=0)
    entropy = _entropy(mean)
    # H[mean] >= mean H[p_t] by concavity; clip the rounding noise around 0.
    mi = np.maximum(entropy - _entropy(p).mean(axis=0), 0.0)
    return MCPrediction(mean, p.var(axis=0), entropy, mi, p if return_samples else None)


def _split_at_first_stochastic(model: Module) -> tuple[list[Module], list[Module]]:
    """``(prefix, rest)`` of a plain Sequential: the leading children without a stochastic
    module compute the same thing in every pass, so they run once per input and only
    their output is repeated (for d2l's MLP the first Linear is 3/4 of the FLOPs).
    Other models run whole on the repeated input."""
    if not isinstance(model, Sequential) or type(model).forward is not Sequential.forward:
        return [], [model]
    children = list(model)
    k = 0
    while k < len(children) and not any(_is_stochastic(m) for m in children[k].modules()):
        k += 1
    return children[:k], children[k:]


# Default memory budget of one forward: the repeated input of a forward stays under
# 64 MiB (the hidden activations are of the same order for MLPs), and at most 64K rows.
_TILE_BYTES = 64 << 20
_MAX_ROWS = 65_536

# One MC forward at a time per process: it flips the model's training flags, wraps its
# stochastic modules and borrows the default generator (Dask's threaded scheduler runs
# tasks on one shared model). Parallelism inside a forward comes from the BLAS and
# dropcore's pool.
_LOCK = threading.RLock()


def _default_rows(data: np.ndarray) -> int:
    row_bytes = max(1, int(np.prod(data.shape[1:], dtype=np.int64)) * data.itemsize)
    return int(max(1, min(_MAX_ROWS, _TILE_BYTES // row_bytes)))


@dataclass(frozen=True)
class _Plan:
    """Where the words of one MC prediction lie, and how its forwards are cut.

    Attributes:
        seed, offset: the generator range of the whole prediction starts here.
        rows: number of inputs of the whole prediction (N).
        samples: passes kept per input (T).
        passes: passes run per input: ``T``, or ``T + 1`` when ``T`` is odd and some
            call reads an odd number of half-words per row (the extra pass, discarded,
            keeps every input's range on whole words).
        half_words: half-words per input row read by each stochastic call, in order.
        inputs_per_forward: inputs per forward (P); forward ``b`` covers inputs
            ``b*P .. (b+1)*P`` of the whole batch, zero-padded at the end, so every input
            goes through GEMMs of the same shape at the same position however the batch
            is sliced (the BLAS may sum in another order for another shape). With
            ``batch_size``, P is ``batch_size // passes``; by default the budget's
            number of forwards is cut into equal ones (padding under one row a forward).
        passes_per_forward: passes per forward (less than ``passes`` only when the
            batch-size budget is below one input's passes; then P = 1).
        classes: width of the model's output.
    """

    seed: int
    offset: int
    rows: int
    samples: int
    passes: int
    half_words: tuple[int, ...]
    inputs_per_forward: int
    passes_per_forward: int
    classes: int

    @property
    def words(self) -> int:
        """Words of the whole prediction (what the generator advances by)."""
        return self.rows * sum(self.passes * q // 2 for q in self.half_words)

    def call_start(self, k: int, first_row: int) -> int:
        """Word where call ``k`` starts when its first row is repeated row ``first_row``
        (``input * passes + pass``); always on a whole word (see ``passes``)."""
        base = self.offset + self.rows * sum(self.passes * q // 2 for q in self.half_words[:k])
        return base + first_row * self.half_words[k] // 2


class _Positioner:
    """Runs the wrapped stochastic modules: measuring words per row (``plan=None``)
    or putting each call at its place in the plan."""

    def __init__(self) -> None:
        self.plan: "_Plan | None" = None
        self.first_row = 0
        self.calls = 0
        self.used: list[int] = []
        self.saved_default = _random.default_generator.get_state()

    def call(self, module: Module, forward, args, kwargs):
        k, self.calls = self.calls, self.calls + 1
        gen = _random.default_generator
        rows = _rows_of(args)
        if self.plan is None:
            gen.set_state((0, 0))
            out = forward(*args, **kwargs)
            self.used.append(gen.offset)
            return out
        q = self.plan.half_words
        if k >= len(q):
            raise RuntimeError(f"mc.predict: the model made more stochastic calls than when it was planned ({len(q)})")
        start = self.plan.call_start(k, self.first_row)
        gen.set_state((self.plan.seed, start))
        out = forward(*args, **kwargs)
        if gen.offset - start != (rows * q[k] + 1) // 2:
            raise RuntimeError(
                f"mc.predict: {type(module).__name__} drew {gen.offset - start} words for {rows} rows, but "
                f"{(rows * q[k] + 1) // 2} when planned; MC prediction needs every stochastic module to "
                "draw the same words per row of its input on every call"
            )
        return out


def _rows_of(args) -> int:
    x = args[0] if args else None
    shape = getattr(x, "shape", None)
    if not shape:
        raise ValueError("mc.predict: a stochastic module was called without a batched Tensor input")
    return int(shape[0])


def _outermost_stochastic(model: Module) -> list[Module]:
    found: list[Module] = []
    seen: set[int] = set()

    def walk(m: Module) -> None:
        if id(m) in seen:
            return
        seen.add(id(m))
        if _is_stochastic(m):
            found.append(m)
            return
        for child in m.children():
            walk(child)

    walk(model)
    return found


@contextmanager
def _mc_mode(model: Module) -> Iterator[_Positioner]:
    """Dropout on, everything else in eval mode, stochastic modules drawing from the
    default generator where the positioner puts it; all restored on exit."""
    with _LOCK:
        modules = list(model.modules())
        flags = [(m, m.training) for m in modules]
        own = [(m, m.generator) for m in modules if _is_stochastic(m) and getattr(m, "generator", None) is not None]
        pos = _Positioner()
        wrapped = []
        try:
            for m, _ in own:
                object.__setattr__(m, "generator", None)
            for m in modules:
                object.__setattr__(m, "training", _is_stochastic(m))
            for m in _outermost_stochastic(model):
                def wrapper(*args, _m=m, _f=m.forward, **kwargs):
                    return pos.call(_m, _f, args, kwargs)

                wrapped.append((m, "forward" in m.__dict__, m.__dict__.get("forward")))
                object.__setattr__(m, "forward", wrapper)
            with no_grad():
                yield pos
        finally:
            for m, had, f in wrapped:
                if had:
                    object.__setattr__(m, "forward", f)
                else:
                    object.__delattr__(m, "forward")
            for m, mode in flags:
                object.__setattr__(m, "training", mode)
            for m, g in own:
                object.__setattr__(m, "generator", g)
            _random.default_generator.set_state(pos.saved_default)


def _model_array(model: Module, x) -> np.ndarray:
    """The inputs as an ndarray: a Tensor's data, or an array cast to the model's dtype."""
    if isinstance(x, Tensor):
        return x._data
    data = np.asarray(x)
    params = [p._data.dtype for p in model.parameters()]
    if params and data.dtype != params[0]:
        data = data.astype(params[0])
    return data


def _check_arguments(samples, batch_size, generator) -> int:
    if isinstance(samples, bool) or not isinstance(samples, (int, np.integer)) or samples < 1:
        raise ValueError(f"samples must be a positive int, but got {samples!r}")
    if batch_size is not None and (isinstance(batch_size, bool) or batch_size < 1):
        raise ValueError(f"batch_size must be a positive int, but got {batch_size!r}")
    if generator is not None and not isinstance(generator, _random.Generator):
        raise TypeError(f"generator must be a dropcore.Generator, but got {type(generator).__name__}")
    return int(samples)


def _measure(model: Module, pos: _Positioner, example: np.ndarray) -> tuple[tuple[int, ...], int]:
    """Half-words per row of each stochastic call, from forwards over 2 and 4 zero rows
    (a call drawing words out of proportion to its rows cannot be sliced: refused),
    and the output width."""
    prefix, rest = _split_at_first_stochastic(model)
    counts = []
    for n in (2, 4):
        h = Tensor(np.zeros((n, *example.shape[1:]), example.dtype))
        for m in prefix:
            h = m(h)
        pos.calls, pos.used = 0, []
        for m in rest:
            h = m(h)
        counts.append(pos.used)
    two, four = counts
    if len(two) != len(four) or any(b != 2 * a for a, b in zip(two, four)):
        raise ValueError(
            "mc.predict needs stochastic modules that draw words in proportion to their batch "
            f"(words per call for 2 and 4 rows: {two} and {four}); e.g. DropConnectLinear needs per_sample=True"
        )
    return tuple(two), int(h.shape[-1])  # words for 2 rows = half-words per row


def _plan(model: Module, example: np.ndarray, rows: int, samples: int, batch_size: int | None,
          generator: _random.Generator | None) -> _Plan:
    """Plan an MC prediction of ``rows`` inputs shaped and typed like ``example`` (an
    array with one or more such rows): measure the model's words per row, cut the
    forwards, and take the words of the whole prediction from ``generator``."""
    gen = _random._resolve(generator)
    with _mc_mode(model) as pos:
        return _plan_in_mode(model, pos, example, rows, samples, batch_size, gen)


def _plan_in_mode(model, pos, data, rows, samples, batch_size, gen) -> _Plan:
    q, classes = _measure(model, pos, data)
    odd = any(h % 2 for h in q)
    passes = samples + (samples % 2 if odd else 0)
    budget = int(batch_size) if batch_size is not None else max(passes, _default_rows(data))
    if budget >= passes:
        per_input, per_pass = max(1, min(budget // passes, rows)), passes
        if batch_size is None and rows:  # as many forwards as the budget needs, of equal size: ~no padding
            per_input = -(-rows // -(-rows // per_input))
    else:
        per_input, per_pass = 1, max(2, budget - budget % 2) if odd else budget
    words = rows * sum(passes * h // 2 for h in q)
    # the defaults restored by _mc_mode must not undo what gen (maybe the default) hands out
    _random.default_generator.set_state(pos.saved_default)
    seed, offset = gen.take(words)
    pos.saved_default = _random.default_generator.get_state()
    return _Plan(seed, offset, rows, samples, passes, q, per_input, per_pass, classes)


def _predict_rows(model: Module, data: np.ndarray, first: int, plan: _Plan, return_samples: bool = False) -> MCPrediction:
    """The prediction for inputs ``first .. first + len(data)`` of the planned batch, given
    their rows ``data``: bit-identical to those rows of the whole batch's prediction."""
    if first < 0 or first + len(data) > plan.rows:
        raise ValueError(f"rows {first}..{first + len(data)} are outside the planned batch of {plan.rows}")
    with _mc_mode(model) as pos:
        p = _probabilities(model, pos, data, first, plan)
    return _statistics(p, return_samples)


def _probabilities(model: Module, pos: _Positioner, data: np.ndarray, first: int, plan: _Plan) -> np.ndarray:
    """(T, n, C) probabilities of inputs ``first .. first + n`` (inside :func:`_mc_mode`)."""
    prefix, rest = _split_at_first_stochastic(model)
    n, P, pp = len(data), plan.inputs_per_forward, plan.passes_per_forward
    pos.plan = plan
    parts = []
    for b in range(first // P, (first + n - 1) // P + 1) if n else []:
        lo, hi = max(b * P, first), min((b + 1) * P, first + n)
        if hi - lo == P:  # a whole block inside the given rows: no copy
            block = data[lo - first : hi - first]
        else:  # zero-padded, each row at its place in the block
            block = np.zeros((P, *data.shape[1:]), data.dtype)
            block[lo - b * P : hi - b * P] = data[lo - first : hi - first]
        h = Tensor(block)
        for m in prefix:
            h = m(h)
        runs = []
        for t0 in range(0, plan.samples, pp):
            pos.calls, pos.first_row = 0, b * P * plan.passes + t0
            out = Tensor(np.repeat(h._data, pp, axis=0))  # input-major: row i * pp + t
            for m in rest:
                out = m(out)
            logits = out._data
            runs.append(_softmax(logits).reshape(P, pp, logits.shape[-1]))
        p = np.concatenate(runs, axis=1)[lo - b * P : hi - b * P, : plan.samples]
        parts.append(p)
    if not parts:
        return np.zeros((plan.samples, 0, plan.classes), data.dtype)
    return np.ascontiguousarray(np.concatenate(parts, axis=0).transpose(1, 0, 2))


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
            keeps the repeated input of one forward under 64 MiB (at most 65,536 rows).
        generator: draw the dropout masks from this Generator (default: the global
            one) and advance it by the words used; the masks are then a function of
            its state, of the input's index in the batch and of the pass (not of
            ``batch_size``). Stochastic modules' own generators are not used.
        return_samples: also return the (T, B, C) probabilities.

    The passes differ only from the first dropout layer on, so the leading layers of a
    :class:`~dropcore.nn.Sequential` before it run once per input (in eval mode every
    layer there works row by row) and their output is what gets repeated.

    Word layout: see the module docstring. Input ``r`` in pass ``t`` reads the same
    words whether it is predicted alone in a slice of the batch or with the whole
    batch; the floating-point results are bit-identical too for the same
    ``batch_size`` and BLAS thread count (every input goes through GEMMs of the same
    shape at the same row; see :class:`_Plan`). Every stochastic module must draw
    its words from its ``generator`` attribute or the default generator, in proportion
    to its batch (a shared-mask ``DropConnectLinear`` is refused: its passes would
    all be the same).

    Every module's ``training`` flag is restored afterwards; all modules other than
    the dropout family run in eval mode (BatchNorm uses its running statistics and
    does not update them). Calls are serialised per process (a lock): the model and
    the default generator are borrowed for the duration.

    Example:
        >>> r = dropcore.mc.predict(model, x_test, samples=30, generator=dropcore.Generator(0))
        >>> r.mean.argmax(1), r.mutual_information   # prediction, model uncertainty
    """
    samples = _check_arguments(samples, batch_size, generator)
    data = _model_array(model, x)
    if data.ndim < 1:
        raise ValueError("x must have a batch dimension, but got a scalar")
    plan = _plan(model, data, len(data), samples, batch_size, generator)
    return _predict_rows(model, data, 0, plan, return_samples)
