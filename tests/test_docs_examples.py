"""Every ```sh block of README.md and docs/*.md runs, in order, as written (#14).

Each document runs in its own temporary directory with the venv's `mlprov` first on
PATH, its blocks concatenated into one `bash -e` script, so a block may use what an
earlier one made. A document prepares what its blocks read in a hidden setup block:

    <!-- setup
    printf 'x,y\\n1,0\\n' > raw.csv
    -->

A block that needs the network (keyless Sigstore, a KMS, PostgreSQL, a cloud bucket, a
Dask scheduler) follows `<!-- skip: needs network (Sigstore) -->` and is reported as
skipped with that reason. Blocks that show output are ```text, not ```sh.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: Documents whose shell blocks are runnable sequences (the others are being converted).
RUNNABLE = ["README.md", "docs/digest.md", "docs/signing.md", "docs/model-signing.md"]
#: Longest one document's blocks may take, in seconds.
DOC_TIME_LIMIT = 120

_FENCE = re.compile(r"^```(\S*)(.*)$")
_SKIP = re.compile(r"^<!--\s*skip:\s*(.*?)\s*-->$")


@dataclass(frozen=True)
class Block:
    line: int
    code: str
    skip: str | None = None


def _until(lines: list[str], i: int, end: str) -> tuple[int, str]:
    """(index of the closing line, the text before it) from line i on."""
    body = []
    while lines[i].strip() != end:
        body.append(lines[i])
        i += 1
    return i, "\n".join(body)


def blocks(path: Path) -> list[Block]:
    """The setup and ```sh blocks of a Markdown file, in order."""
    found: list[Block] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    skip: str | None = None
    i = 0
    while i < len(lines):
        text = lines[i].strip()
        if match := _SKIP.match(text):
            skip = match.group(1)
        elif text == "<!-- setup":
            start, i, body = i, *_until(lines, i + 1, "-->")
            found.append(Block(start + 1, body))
        elif (match := _FENCE.match(text)) and match.group(1):
            start, i, body = i, *_until(lines, i + 1, "```")
            if match.group(1) == "sh":
                found.append(Block(start + 1, body, skip))
            skip = None
        elif text:
            skip = None if not text.startswith("<!--") else skip
        i += 1
    return found


def _script(doc: str, runnable: list[Block]) -> str:
    parts = ["set -eo pipefail"]
    for block in runnable:
        parts.append(f"echo '>>> {doc}:{block.line}' >&2")
        parts.append(block.code)
    return "\n".join(parts) + "\n"


@pytest.mark.parametrize("doc", RUNNABLE)
def test_documented_commands_run_as_written(doc: str, tmp_path: Path) -> None:
    runnable = [b for b in blocks(ROOT / doc) if b.skip is None]
    assert runnable, f"{doc} has no runnable ```sh block"
    work = tmp_path / "work"
    work.mkdir()
    env = dict(os.environ)
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        HOME=str(tmp_path / "home"),
        XDG_CACHE_HOME=str(tmp_path / "cache"),
        XDG_DATA_HOME=str(tmp_path / "data"),
        MLPROV_STORE=str(tmp_path / "store.db"),
        MLPROV_REPO=str(ROOT),
        HF_HUB_OFFLINE="1",
    )
    for name in ("GITHUB_ACTIONS", "GITHUB_STEP_SUMMARY", "CI", "MLPROV_DASK_SCHEDULER"):
        env.pop(name, None)
    done = subprocess.run(
        ["bash", "-c", _script(doc, runnable)],
        cwd=work,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=DOC_TIME_LIMIT,
        check=False,
    )
    failed_at = [line for line in done.stderr.splitlines() if line.startswith(">>> ")]
    assert done.returncode == 0, (
        f"{failed_at[-1] if failed_at else doc} failed (exit {done.returncode}):\n"
        f"{done.stderr[-3000:]}"
    )


def _skipped() -> list[tuple[str, int, str]]:
    return [
        (doc, b.line, b.skip) for doc in RUNNABLE for b in blocks(ROOT / doc) if b.skip is not None
    ]


@pytest.mark.parametrize(("doc", "line", "reason"), _skipped())
def test_network_examples_are_skipped_with_their_reason(doc: str, line: int, reason: str) -> None:
    pytest.skip(f"{doc}:{line}: {reason}")


def test_block_parser_reads_setup_skip_and_fences(tmp_path: Path) -> None:
    doc = tmp_path / "d.md"
    doc.write_text(
        "<!-- setup\ntouch a\n-->\n```sh\nls a\n```\n<!-- skip: needs network (KMS) -->\n"
        "```sh\nmlprov sign x --key awskms:k\n```\n```text\nnot run\n```\n```sh\necho b\n```\n"
    )
    found = blocks(doc)
    assert [(b.code, b.skip) for b in found] == [
        ("touch a", None),
        ("ls a", None),
        ("mlprov sign x --key awskms:k", "needs network (KMS)"),
        ("echo b", None),
    ]
