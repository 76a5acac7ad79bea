"""Start-up: a command imports only what it needs (each CLI call, dozens per CI job, pays it).

Each case runs mlprov's `main` in a fresh interpreter and reads back `sys.modules`: a
module imported at the top of a command module, or by `import mlprov`, shows up there.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import click
import pytest

from conftest import run_cli
from mlprov.cli.main import COMMANDS, cli

#: Heavy libraries no cheap command may load: the CEL engine, Sigstore, JSON Schema,
#: in-toto, PostgreSQL, and securesystemslib's signer package (whose __init__ imports
#: every cloud and hardware signer, and with it any of their SDKs that are installed).
HEAVY = (
    "celpy",
    "lark",
    "sigstore",
    "sigstore_models",
    "jsonschema",
    "in_toto",
    "in_toto_attestation",
    "psycopg",
    "securesystemslib.signer",
    "securesystemslib.signer._aws_signer",
    "securesystemslib.signer._gcp_signer",
    "securesystemslib.signer._azure_signer",
    "securesystemslib.signer._hsm_signer",
    "securesystemslib.signer._vault_signer",
    "securesystemslib.signer._gpg_signer",
    "securesystemslib.signer._tkey_signer",
    "securesystemslib.signer._sigstore_signer",
)

#: What still is heavy for a command that verifies keys: everything above but the signer
#: package (a key's verify_signature lives there, so its __init__ cannot be avoided).
HEAVY_FOR_KEYS = tuple(m for m in HEAVY if not m.startswith("securesystemslib.signer"))

RUN_MAIN = (
    "import json, sys\n"
    "from mlprov.cli.main import main\n"
    "code = main(sys.argv[1:])\n"
    "sys.stdout.flush()\n"
    "print(json.dumps({'code': code, 'modules': sorted(sys.modules)}))\n"
)


def _modules(*args: str | Path, code: str = RUN_MAIN) -> tuple[int, set[str], str]:
    """(exit code, modules imported, output) of `mlprov ARGS` run in a new interpreter."""
    done = subprocess.run(
        [sys.executable, "-c", code, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    *output, last = done.stdout.rstrip("\n").split("\n")
    report = json.loads(last)
    return report["code"], set(report["modules"]), "\n".join(output)


def _heavy(modules: set[str], heavy: tuple[str, ...] = HEAVY) -> list[str]:
    """The heavy packages (or any of their submodules) among `modules`."""
    return sorted(h for h in heavy if any(m == h or m.startswith(h + ".") for m in modules))


def test_version_imports_nothing_heavy() -> None:
    code, modules, output = _modules("--version")
    assert code == 0 and "mlprov, version" in output
    assert _heavy(modules) == []
    assert "pydantic" not in modules  # nor the models: --version needs none
    assert [m for m in modules if m.startswith("mlprov.cli.") and m != "mlprov.cli.main"] == []


def test_digest_imports_nothing_heavy(tmp_path: Path) -> None:
    tree = tmp_path / "model"
    tree.mkdir()
    for i in range(3):
        (tree / f"part-{i}.bin").write_bytes(bytes([i]) * 1000)
    code, modules, output = _modules("digest", tree)
    assert code == 0 and output.startswith("sha256:")
    assert _heavy(modules) == []
    # Nor the other commands, nor processes or threads for three small files.
    assert sorted(m for m in modules if m.startswith("mlprov.cli.")) == [
        "mlprov.cli._common",
        "mlprov.cli.digest",
        "mlprov.cli.main",
    ]
    assert "multiprocessing" not in modules and "concurrent.futures.thread" not in modules


def test_import_mlprov_is_light() -> None:
    code = "import json, sys\nimport mlprov\nprint(json.dumps(sorted(sys.modules)))\n"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    modules = set(json.loads(done.stdout))
    assert _heavy(modules) == []
    assert sorted(m for m in modules if m.startswith("mlprov")) == ["mlprov"]
    assert not {"pydantic", "click", "yaml"} & modules


def test_the_python_api_is_there_on_first_use_without_signing_libraries() -> None:
    code = (
        "import json, sys\n"
        "import mlprov\n"
        "from mlprov import evaluation_statement\n"
        "assert mlprov.TrainingRun.__module__ == 'mlprov.api', mlprov.TrainingRun\n"
        "assert callable(evaluation_statement) and 'TrainingRun' in dir(mlprov)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert _heavy(set(json.loads(done.stdout))) == []


def test_unknown_attribute_of_mlprov_is_an_attribute_error() -> None:
    import mlprov

    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = mlprov.nope  # type: ignore[attr-defined]


def test_help_lists_every_command_without_importing_them() -> None:
    code, modules, output = _modules("--help")
    assert code == 0
    listed = output.split("Commands:\n", 1)[1].splitlines()
    names = [line.split()[0] for line in listed if line.startswith("  ") and line.strip()]
    assert names == sorted(COMMANDS)
    for name in ("digest", "verify", "policy", "store", "model", "attest", "run", "lineage"):
        assert name in names
    assert [m for m in modules if m.startswith("mlprov.cli.") and m != "mlprov.cli.main"] == []
    assert _heavy(modules) == []


def test_help_is_what_click_prints_with_every_command_loaded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The table's short help, shortened by click's rules, is what the commands would show."""
    monkeypatch.setenv("COLUMNS", "80")  # the same width here and in the child
    _, _, lazy = _modules("--help")
    eager = click.Group("mlprov", help=cli.help, params=list(cli.params))
    ctx = click.Context(cli)
    for name in cli.list_commands(ctx):
        command = cli.get_command(ctx, name)
        assert command is not None
        eager.add_command(command, name)
    settings = cli.context_settings
    assert lazy == eager.get_help(click.Context(eager, info_name="mlprov", **settings))


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_each_table_line_names_its_command(name: str) -> None:
    entry = COMMANDS[name]
    ctx = click.Context(cli)
    command = cli.get_command(ctx, name)
    assert isinstance(command, click.Command), entry.target
    assert command.name == name, f"{entry.target} is named {command.name!r}, not {name!r}"
    assert entry.short_help == command.get_short_help_str(limit=10_000), (
        f"COMMANDS[{name!r}] short help differs from the command's docstring"
    )


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_a_commands_help_imports_nothing_heavy(name: str) -> None:
    """Module tops stay light: heavy libraries are imported inside the command that needs them."""
    code, modules, _ = _modules(name, "--help")
    assert code == 0
    # keygen, lineage and schema load the key and store modules their options name.
    allowed = HEAVY_FOR_KEYS if name in ("keygen", "lineage", "schema") else HEAVY
    assert _heavy(modules, allowed) == []


def test_unknown_command_is_still_a_usage_error() -> None:
    result = run_cli("no-such-command")
    assert result.code == 2
    assert "No such command 'no-such-command'" in result.err


def test_a_mistyped_command_is_matched_against_every_command() -> None:
    # In a new process, where no command is imported yet.
    done = subprocess.run(
        [sys.executable, "-c", RUN_MAIN, "digset"], capture_output=True, text=True, check=True
    )
    if hasattr(click.exceptions, "NoSuchCommand"):  # click >= 8.4 suggests
        assert "Did you mean 'digest'?" in done.stderr, done.stderr
    assert json.loads(done.stdout.splitlines()[-1])["code"] == 2


def test_verify_with_a_key_loads_no_sigstore_cel_or_schemas(tmp_path: Path) -> None:
    statement = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "m.bin", "digest": {"sha256": "ab" * 32}}],
        "predicateType": "https://example.com/predicate/v1",
        "predicate": {"k": 1},
    }
    (tmp_path / "s.json").write_text(json.dumps(statement))
    key = tmp_path / "k"
    assert run_cli("keygen", "--out", key, "--no-password").code == 0
    signed = tmp_path / "s.intoto.json"
    assert run_cli("sign", tmp_path / "s.json", "--key", f"{key}.key", "--out", signed).code == 0
    code, modules, output = _modules("verify", signed, "--key", f"{key}.pub")
    assert code == 0, output
    assert "OK: 1 attestation(s)" in output
    assert _heavy(modules, HEAVY_FOR_KEYS) == []


def _threads_used(tree: Path) -> bool:
    """Whether `mlprov digest --no-cache TREE` started the thread pool (in a new process)."""
    code, modules, output = _modules("digest", "--no-cache", "--jobs", "2", tree)
    assert code == 0 and output.startswith("sha256:"), output
    assert "multiprocessing" not in modules  # a few files never fork workers
    return "concurrent.futures.thread" in modules


def test_one_large_file_is_hashed_without_starting_threads(tmp_path: Path) -> None:
    from mlprov.digest.hashing import LARGE_FILE

    tree = tmp_path / "one"
    tree.mkdir()
    (tree / "weights.bin").write_bytes(b"\1" * (LARGE_FILE + 1))
    (tree / "config.json").write_bytes(b"{}")
    assert not _threads_used(tree)  # nothing to run beside it: the pool would only cost


def test_two_large_files_are_hashed_in_the_pool(tmp_path: Path) -> None:
    from mlprov.digest.tree import POOL_MIN_SAVING

    tree = tmp_path / "two"
    tree.mkdir()
    for i in range(2):
        (tree / f"shard-{i}.bin").write_bytes(bytes([i]) * (POOL_MIN_SAVING + 1))
    assert _threads_used(tree)


def test_pool_saving_is_what_threads_can_take_off_the_longest_path() -> None:
    from mlprov.digest.tree import pool_saving

    assert pool_saving([100], 2) == 0  # one task: nothing runs beside it
    assert pool_saving([100, 100], 1) == 0
    assert pool_saving([100, 100], 2) == 100
    assert pool_saving([100, 100, 100, 100], 2) == 200
    assert pool_saving([300, 10, 10], 2) == 20  # the largest task is the longest path
    assert pool_saving([], 4) == 0


def test_the_console_script_freezes_a_commands_imports_out_of_garbage_collection(
    tmp_path: Path,
) -> None:
    """`mlprov` (run()) imports the command without collecting, then gc.freeze()s what it
    imported: the full collection at exit then skips it. main() (in-process) does not."""
    (tmp_path / "f.bin").write_bytes(b"x")
    code = (
        "import atexit, gc, json, sys\n"
        "atexit.register(lambda: print(json.dumps([gc.get_freeze_count(), gc.isenabled()])))\n"
        "from mlprov.cli.main import run\n"
        f"sys.argv = ['mlprov', 'digest', {str(tmp_path)!r}]\n"
        "run()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    frozen, enabled = json.loads(done.stdout.splitlines()[-1])
    assert frozen > 10_000 and enabled  # pydantic's objects, at least; collection back on
    code_main = RUN_MAIN.replace("sorted(sys.modules)", "__import__('gc').get_freeze_count()")
    done = subprocess.run(
        [sys.executable, "-c", code_main, "digest", str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert json.loads(done.stdout.splitlines()[-1])["modules"] == 0
