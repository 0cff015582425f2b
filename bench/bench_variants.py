"""The dropout family vs memcpy, DropConnect vs Linear: `python bench/bench_variants.py [--quick]`."""

import sys

from dropcore.benchmarks.variants import run

if __name__ == "__main__":
    run(quick="--quick" in sys.argv)
