"""Every ```sh block of README.md and docs/*.md runs, in order, as written (#14).

Each document runs in its own temporary directory with the venv's `mlprov` first on
PATH, its blocks concatenated into one `bash -e` script, so a block may use what an
earlier one made. A document prepares what its blocks read in a hidden setup block:

    <!-- setup
    printf 'x,y\\n1,0\\n' > raw.csv
    -->

A document whose examples continue the README's story starts from a finished demo: its
setup block copies `$MLPROV_DEMO` (examples/ after `bash examples/demo.sh`, run once per
test session in a temporary copy), just as a reader runs the examples after `make demo`.

A document that reads `s3://bucket/...` gets a versioned bucket `bucket` on the session's
local moto S3 server (tests/s3_support.py), holding the objects `EXAMPLE_BUCKET` names,
with fake credentials and `AWS_ENDPOINT_URL` set as for any S3-compatible store.

A block that needs the network (keyless Sigstore, a KMS, PostgreSQL, another cloud's
bucket, a remote Dask scheduler) follows `<!-- skip: needs network (Sigstore) -->` and is
reported as skipped with that reason. A block that needs a program mlprov does not install follows
`<!-- needs: dot -->`; it runs where that program is on PATH and is skipped, saying so,
where it is not. A block that shows a refusal follows `<!-- exit: 2 -->`: it runs as a
`set -e` subshell and must end with that status, and each comment line quoting what it
prints (`# mlprov: ...`, `# ::error ...`) must be a line it printed. Blocks that show
output are ```text, not ```sh.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: Every user-facing document: the README and everything under docs/.
DOCS = ["README.md", *sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "docs").rglob("*.md"))]
#: Longest one document's blocks may take, in seconds.
DOC_TIME_LIMIT = 120
#: Longest the demo (the starting point of several documents) may take, in seconds.
DEMO_TIME_LIMIT = 300

#: The objects of the documents' example bucket, `s3://bucket/`.
EXAMPLE_BUCKET = {
    "datasets/train/part-0.csv": b"x,y\n0,0\n1,1\n",
    "datasets/train/part-1.csv": b"x,y\n2,0\n3,1\n",
    "models/v3/model.safetensors": b"weights of model v3",
    "train/a.csv": b"x,y\n0,1\n",
    "train/b.csv": b"x,y\n1,0\n",
    "data/part.csv": b"x,y\n5,1\n",
    "llm/model.safetensors": bytes(range(256)) * 4096,
}

_FENCE = re.compile(r"^```(\S*)(.*)$")
_SKIP = re.compile(r"^<!--\s*skip:\s*(.*?)\s*-->$")
_NEEDS = re.compile(r"^<!--\s*needs:\s*(\S+)\s*-->$")
_EXIT = re.compile(r"^<!--\s*exit:\s*(\d+)\s*-->$")


@dataclass(frozen=True)
class Block:
    line: int
    code: str
    skip: str | None = None
    #: The exit status the block must end with (None: it must succeed).
    exit: int | None = None


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
    expect: int | None = None
    i = 0
    while i < len(lines):
        text = lines[i].strip()
        if match := _SKIP.match(text):
            skip = match.group(1)
        elif match := _NEEDS.match(text):
            tool = match.group(1)
            skip = None if shutil.which(tool) else f"needs {tool}, which is not installed here"
        elif match := _EXIT.match(text):
            expect = int(match.group(1))
        elif text == "<!-- setup":
            start, i, body = i, *_until(lines, i + 1, "-->")
            found.append(Block(start + 1, body))
        elif (match := _FENCE.match(text)) and match.group(1):
            start, i, body = i, *_until(lines, i + 1, "```")
            if match.group(1) == "sh":
                found.append(Block(start + 1, body, skip, expect))
            skip, expect = None, None
        elif text and not text.startswith("<!--"):
            skip, expect = None, None
        i += 1
    return found


def _documented_messages(code: str) -> list[str]:
    """A block's comment lines that quote what mlprov prints: `# mlprov: ...` messages and
    `# ::error ...` / `# ::warning ...` GitHub workflow commands."""
    lines = (line.strip() for line in code.splitlines())
    quoted = ("# mlprov: ", "# ::error ", "# ::warning ")
    return [line[2:] for line in lines if line.startswith(quoted)]


def _script(doc: str, runnable: list[Block]) -> str:
    parts = ["set -eo pipefail"]
    for block in runnable:
        parts.append(f"echo '>>> {doc}:{block.line}' >&2")
        if block.exit is None:
            parts.append(block.code)
            continue
        parts += [
            "printed=$(mktemp) && set +e",
            f'(\nset -e\n{block.code}\n) >"$printed" 2>&1',
            'status=$? && set -e && cat "$printed" >&2',
            f'[ "$status" = {block.exit} ] || '
            f'{{ echo ">>> expected exit {block.exit}, got $status" >&2; exit 1; }}',
        ]
        for said in _documented_messages(block.code):
            parts.append(
                f'grep -qxF -- {shlex.quote(said)} "$printed" || '
                f"{{ echo {shlex.quote('>>> not printed: ' + said)} >&2; exit 1; }}"
            )
    return "\n".join(parts) + "\n"


def _environment(tmp: Path) -> dict[str, str]:
    """The venv's `mlprov` first on PATH; home, caches, temporary files and store inside
    `tmp`."""
    (tmp / "tmp").mkdir(exist_ok=True)
    env = dict(os.environ)
    env.update(
        TMPDIR=str(tmp / "tmp"),
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        HOME=str(tmp / "home"),
        XDG_CACHE_HOME=str(tmp / "cache"),
        XDG_DATA_HOME=str(tmp / "data"),
        MLPROV_STORE=str(tmp / "store.db"),
        MLPROV_REPO=str(ROOT),
        HF_HUB_OFFLINE="1",
    )
    for name in (
        "GITHUB_ACTIONS",
        "GITHUB_STEP_SUMMARY",
        "CI",
        "MLPROV_DASK_SCHEDULER",
        "MLPROV_CACHE_DIR",
    ):
        env.pop(name, None)
    return env


@pytest.fixture(scope="session")
def finished_demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """examples/ after `bash examples/demo.sh`, in a temporary copy made once per session."""
    tmp = tmp_path_factory.mktemp("demo")
    examples = tmp / "examples"
    shutil.copytree(
        ROOT / "examples", examples, ignore=shutil.ignore_patterns("out", "__pycache__")
    )
    done = subprocess.run(
        ["bash", str(examples / "demo.sh")],
        env=_environment(tmp),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=DEMO_TIME_LIMIT,
        check=False,
    )
    assert done.returncode == 0, f"examples/demo.sh failed:\n{(done.stdout + done.stderr)[-3000:]}"
    return examples


@pytest.fixture(scope="session")
def example_bucket(s3_endpoint: str) -> dict[str, str]:
    """`s3://bucket/` on the session's moto server; the environment a document reaches it with."""
    import boto3

    from s3_support import FAKE_ENV

    client = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        region_name=FAKE_ENV["AWS_DEFAULT_REGION"],
        aws_access_key_id=FAKE_ENV["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=FAKE_ENV["AWS_SECRET_ACCESS_KEY"],
    )
    client.create_bucket(Bucket="bucket")
    client.put_bucket_versioning(Bucket="bucket", VersioningConfiguration={"Status": "Enabled"})
    for key, data in EXAMPLE_BUCKET.items():
        client.put_object(Bucket="bucket", Key=key, Body=data)
    return {**FAKE_ENV, "AWS_ENDPOINT_URL": s3_endpoint}


def _runnable(doc: str) -> list[Block]:
    return [b for b in blocks(ROOT / doc) if b.skip is None]


#: Documents with at least one ```sh block (the others show no commands to run).
RUNNABLE = [doc for doc in DOCS if blocks(ROOT / doc)]


@pytest.mark.parametrize("doc", RUNNABLE)
def test_documented_commands_run_as_written(
    doc: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    runnable = _runnable(doc)
    if not runnable:
        pytest.skip(f"{doc}: every block is skipped (see the skipped-example tests)")
    script = _script(doc, runnable)
    work = tmp_path / "work"
    work.mkdir()
    env = _environment(tmp_path)
    if "$MLPROV_DEMO" in script:
        env["MLPROV_DEMO"] = str(request.getfixturevalue("finished_demo"))
    if "s3://bucket/" in script:
        from s3_support import UNSET

        for name in UNSET:
            env.pop(name, None)
        env.update(request.getfixturevalue("example_bucket"))
    done = subprocess.run(
        ["bash", "-c", script],
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


def test_every_document_is_covered() -> None:
    """No document is left out: a doc without ```sh blocks shows no shell commands at all."""
    for doc in DOCS:
        if doc in RUNNABLE:
            continue
        text = (ROOT / doc).read_text(encoding="utf-8")
        fenced = re.findall(r"^```(bash|shell|console|zsh)\b", text, re.MULTILINE)
        assert not fenced, f"{doc}: shell examples must be ```sh blocks so they are run"


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


def test_needs_marker_runs_a_block_only_where_its_program_is(tmp_path: Path) -> None:
    doc = tmp_path / "d.md"
    doc.write_text(
        "<!-- needs: sh -->\n```sh\necho has sh\n```\n"
        "<!-- needs: no-such-program-mlprov -->\n```sh\nno-such-program-mlprov\n```\n"
    )
    assert [(b.code, b.skip) for b in blocks(doc)] == [
        ("echo has sh", None),
        ("no-such-program-mlprov", "needs no-such-program-mlprov, which is not installed here"),
    ]


def test_exit_marker_requires_that_status(tmp_path: Path) -> None:
    doc = tmp_path / "d.md"
    doc.write_text(
        "<!-- exit: 2 -->\n```sh\necho 'mlprov: error: no'; exit 2\n# mlprov: error: no\n```\n"
        "<!-- exit: 2 -->\n```sh\ntrue\n```\n"
        "<!-- exit: 2 -->\n```sh\necho 'mlprov: error: other'; exit 2\n# mlprov: error: no\n```\n"
    )
    first, second, third = blocks(doc)
    assert (first.exit, second.exit, third.exit) == (2, 2, 2)
    ok = subprocess.run(["bash", "-c", _script("d.md", [first])], capture_output=True, check=False)
    bad = subprocess.run(
        ["bash", "-c", _script("d.md", [second])], capture_output=True, text=True, check=False
    )
    assert ok.returncode == 0
    assert bad.returncode == 1 and "expected exit 2, got 0" in bad.stderr
    other = subprocess.run(
        ["bash", "-c", _script("d.md", [third])], capture_output=True, text=True, check=False
    )
    assert other.returncode == 1 and "not printed: mlprov: error: no" in other.stderr
