"""Benchmarks behind ``python -m dropcore bench`` and the scripts in ``bench/``.

Speed is reported as ratios measured in one run (this kind of machine is noisy):
every table has a memcpy or NumPy column beside dropcore's. PyTorch and JAX columns
appear when those packages are importable.
"""

from __future__ import annotations

import importlib
import time
from typing import Callable, Sequence

__all__ = ["timeit", "print_table", "optional_import", "format_rate"]


def timeit(fn: Callable[[], object], min_time: float = 0.25, repeat: int = 5, max_calls: int = 10_000) -> float:
    """Best-of-``repeat`` seconds per call of ``fn`` (each repeat runs >= ``min_time`` s).

    The minimum over repeats is the least noisy estimate of what the code costs on an
    otherwise idle machine; one warm-up call runs first.
    """
    fn()
    t0 = time.perf_counter()
    fn()
    one = max(time.perf_counter() - t0, 1e-7)
    calls = int(min(max_calls, max(1, min_time / one)))
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter() - t0) / calls)
    return best


def format_rate(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def print_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[object]], file=None) -> str:
    """Print (and return) a Markdown table, so the output pastes into notes and the README."""
    cells = [[str(c) for c in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = [f"### {title}", ""]
    lines.append("| " + " | ".join(h.ljust(w) for h, w in zip(cells[0], widths)) + " |")
    lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in cells[1:]:
        lines.append("| " + " | ".join(c.rjust(w) for c, w in zip(r, widths)) + " |")
    text = "\n".join(lines) + "\n"
    print(text, file=file, flush=True)
    return text


def optional_import(name: str):
    """The module ``name`` if it imports, else ``None`` (PyTorch and JAX are optional peers)."""
    try:
        return importlib.import_module(name)
    except Exception:
        return None
