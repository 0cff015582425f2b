"""Command line: ``python -m dropcore demo`` (the main job) and ``python -m dropcore bench``."""

from __future__ import annotations

import argparse
import importlib
import sys

BENCHMARKS = ("dropout", "variants", "mlp", "mc")


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
    from .demo import run

    run(quick=args.quick, out=args.out, seed=args.seed)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dropcore", description="dropcore: dropout at the speed of memory")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="reproduce the lecture notes' experiments, with plots")
    demo.add_argument("--quick", action="store_true", help="a small version that finishes in under a minute")
    demo.add_argument("--out", default="dropcore-demo", help="folder for the PNG plots (default: ./dropcore-demo)")
    demo.add_argument("--seed", type=int, default=0, help="seed of every experiment (default: 0)")
    demo.set_defaults(fn=_demo)
    bench = sub.add_parser("bench", help="the performance tables (dropcore vs memcpy, NumPy, PyTorch/JAX)")
    bench.add_argument("--quick", action="store_true", help="fewer sizes and repeats")
    bench.add_argument("--only", choices=BENCHMARKS, help="run one table")
    bench.set_defaults(fn=_bench)
    args = parser.parse_args(argv)
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
