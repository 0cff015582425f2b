"""Every benchmark table: the same as `python -m dropcore bench [--quick]`."""

import sys

from dropcore.__main__ import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
