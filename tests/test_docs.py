"""Every fenced ```python block of README.md and docs/*.md runs as written.

Each block runs alone in a fresh interpreter, in an empty folder, exactly as a reader
would paste it. A block with ``>>>`` prompts is a doctest: the output it shows must be
the output it gives. A block without prompts must run without error (it shows no
output). A block may opt out only with a first line ``# not run: <reason>``, which the
reader sees.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("**/*.md"))]
OPT_OUT = re.compile(r"^# not run: (?P<reason>\S.{9,})$")
FENCE = re.compile(r"^(?P<indent>\s*)```(?P<info>[^`]*)$")

DOCTEST_RUNNER = r"""
import doctest, sys
text = sys.stdin.read()
test = doctest.DocTestParser().get_doctest(text, {"__name__": "__main__"}, sys.argv[1], sys.argv[1], 0)
runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
runner.run(test, out=sys.stdout.write)
sys.exit(1 if runner.failures else 0)
"""


def python_blocks(path: Path):
    """(first line number, code) of every ```python block in a Markdown file."""
    blocks, lines, i = [], path.read_text().splitlines(), 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if m and m["info"].strip():
            lang, start, body = m["info"].strip().split()[0], i + 1, []
            i += 1
            while i < len(lines) and not FENCE.match(lines[i]):
                body.append(lines[i])
                i += 1
            if lang in ("python", "py", "pycon"):
                blocks.append((start + 1, textwrap.dedent("\n".join(body)) + "\n"))
        i += 1
    return blocks


BLOCKS = [(p, line, code) for p in DOCS for line, code in python_blocks(p)]


def test_the_documents_have_python_blocks():
    files = {p.name for p, _, _ in BLOCKS}
    assert "README.md" in files and len(BLOCKS) >= 5, files


@pytest.mark.parametrize("path, line, code", BLOCKS, ids=[f"{p.relative_to(ROOT)}:{n}" for p, n, _ in BLOCKS])
def test_block_runs_as_written(path, line, code, tmp_path):
    first = code.lstrip().splitlines()[0] if code.strip() else ""
    if first.startswith("# not run"):
        assert OPT_OUT.match(first), f"an opted-out block must say why: '# not run: <reason>', got {first!r}"
        pytest.skip(OPT_OUT.match(first)["reason"])
    where = f"{path.relative_to(ROOT)}:{line}"
    if re.search(r"^>>> ", code, re.M):
        cmd = [sys.executable, "-c", DOCTEST_RUNNER, where]
    else:
        cmd = [sys.executable, "-c", code]
    proc = subprocess.run(cmd, input=code, capture_output=True, text=True, cwd=tmp_path, timeout=600)
    # stderr is not checked: a block may log (Dask does), and what counts is that it runs.
    assert proc.returncode == 0, f"{where} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
