"""Command line: ``dropcore demo`` (the main job) and ``dropcore bench``.

The same program runs as ``python -m dropcore`` and as the ``dropcore`` console script;
its usage lines name whichever was typed. A bad argument prints one line and exits with
status 2 (argparse's convention) before anything is created on disk.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import tempfile
from pathlib import Path

BENCHMARKS = ("dropout", "variants", "mlp", "mc")
SEED_MAX = 2**64 - 1
DEMO_NEEDS = ("matplotlib", "tqdm", "threadpoolctl")  # the `demo` extra in pyproject.toml


class UsageError(Exception):
    """A bad command-line argument: one line on stderr, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, but an error is one line (``prog: error: ...``) instead of usage + error."""

    def error(self, message: str):  # noqa: D102 - argparse's hook
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"seed must be an integer in [0, 2^64-1], but got {text!r}") from None
    if not 0 <= value <= SEED_MAX:
        raise argparse.ArgumentTypeError(f"seed must be an integer in [0, 2^64-1], but got {value}")
    return value


def _prepare_out(path: str) -> Path:
    """Create the output folder (and missing parents) and check that a file can be written
    there. On failure remove every folder this call created, so a bad ``--out`` leaves
    nothing behind, and raise UsageError."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {path}: exists and is not a folder")
    missing = []
    p = out.absolute()
    while not p.exists():
        missing.append(p)
        p = p.parent
    if not p.is_dir():
        raise UsageError(f"--out {path}: {p} is not a folder")
    created = []
    try:
        for d in reversed(missing):
            d.mkdir()
            created.append(d)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as e:
        for d in reversed(created):
            try:
                d.rmdir()
            except OSError:
                pass
        reason = e.strerror or str(e)
        raise UsageError(f"--out {path}: cannot create the folder or write in it ({reason})") from None
    return out


def _bench(args: argparse.Namespace) -> int:
    from . import get_num_threads
    from ._core import simd_isa

    names = [args.only] if args.only else list(BENCHMARKS)
    print(f"dropcore bench: {get_num_threads()} threads, {simd_isa()}" + (" (quick)" if args.quick else ""), flush=True)
    for name in names:
        try:
            module = importlib.import_module(f"dropcore.benchmarks.{name}")
        except ModuleNotFoundError as e:
            if e.name == f"dropcore.benchmarks.{name}":
                print(f"(no {name} benchmark in this build)")
                continue
            raise
        module.run(quick=args.quick)
    return 0


def _demo(args: argparse.Namespace) -> int:
    missing = []
    for name in DEMO_NEEDS:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        print(f"{args.prog} demo needs the 'demo' extra (missing: {', '.join(missing)}): "
              f"pip install \"dropcore[demo]\" (or \".[demo]\" in a clone)", file=sys.stderr)
        return 1
    out = _prepare_out(args.out)
    from .demo import run

    run(quick=args.quick, out=out, seed=args.seed)
    return 0


def _default_prog() -> str:
    """``python -m dropcore`` when run as a module, else the script's name (``dropcore``)."""
    name = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    return "python -m dropcore" if name in ("", "__main__.py", "-c") else name


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    from . import __version__

    prog = prog or _default_prog()
    parser = _Parser(prog=prog, description="dropcore: dropout and its family from a Rust engine")
    parser.add_argument("--version", action="version", version=f"dropcore {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{demo,bench}")
    demo = sub.add_parser("demo", help="reproduce the lecture notes' experiments, with plots (needs dropcore[demo])")
    demo.add_argument("--quick", action="store_true", help="fewer seeds and epochs: under a minute")
    demo.add_argument("--out", default="dropcore-demo", help="folder for the PNGs and summary.md (default: ./dropcore-demo)")
    demo.add_argument("--seed", type=_seed, default=0, help="first seed of the runs, in [0, 2^64-1] (default: 0)")
    demo.set_defaults(fn=_demo)
    bench = sub.add_parser("bench", help="the performance tables (dropcore vs memcpy, NumPy, PyTorch/JAX)")
    bench.add_argument("--quick", action="store_true", help="fewer sizes and repeats")
    bench.add_argument("--only", choices=BENCHMARKS, help="run one table")
    bench.set_defaults(fn=_bench)
    args = parser.parse_args(argv)
    args.prog = prog
    try:
        return args.fn(args)
    except UsageError as e:
        print(f"{prog} {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
