"""Hostile input (issue #11): devices and FIFOs, YAML aliases, CEL cost, junk signatures,
bad `.intoto.jsonl` lines, control characters in names, bad option values.

Each reproduction of the issue is performed as written; every one must end in exit 2
(or 1) with one line on stderr, quickly, and never a traceback.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import CliResult, run_cli, time_limit

STATEMENT = {
    "_type": "https://in-toto.io/Statement/v1",
    "subject": [{"name": "model.bin", "digest": {"sha256": hashlib.sha256(b"w\n").hexdigest()}}],
    "predicateType": "https://slsa.dev/provenance/v1",
    "predicate": {"buildDefinition": {"buildType": "x"}},
}


@pytest.fixture(autouse=True)
def _no_hang() -> Iterator[None]:
    """A read that blocks (a FIFO with no writer) fails the test instead of hanging it."""
    with time_limit(20):
        yield


def one_line_error(result: CliResult, code: int = 2) -> None:
    assert result.code == code, result
    assert "Traceback" not in result.err, result
    assert result.err.count("\n") == 1 and result.err.startswith("mlprov: error: "), result


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Keys, a model, a Statement, its signed envelope and a starter layout in tmp_path."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLPROV_STORE", str(tmp_path / "store.db"))
    assert run_cli("keygen", "--out", "k", "--no-password").code == 0
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "model.bin").write_bytes(b"w\n")
    (tmp_path / "model.bin").write_bytes(b"w\n")
    (tmp_path / "st.json").write_text(json.dumps(STATEMENT))
    assert run_cli("sign", "st.json", "--key", "k.key", "--out", "st.intoto.json").code == 0
    assert run_cli("policy", "init", "--out", "layout.yaml", "--key", "k.pub").code == 0
    assert run_cli("model", "sign", "model", "--key", "k.key").code == 0
    (tmp_path / "metrics.json").write_text('{"accuracy": 0.9}')
    return tmp_path


# {h} is the hostile file; every other argument is valid, so the hostile one is what fails.
NON_REGULAR_CASES = [
    ["verify", "{h}", "--key", "k.pub"],
    ["verify", "st.intoto.json", "--key", "{h}"],
    ["store", "add", "{h}", "--key", "k.pub"],
    ["store", "add", "st.intoto.json", "--key", "{h}"],
    ["policy", "lint", "{h}"],
    ["policy", "lint", "layout.yaml", "--param-file", "{h}"],
    ["policy", "check", "{h}", "--attestations", "."],
    ["policy", "check", "layout.yaml", "--attestations", "{h}"],
    ["policy", "check", "layout.yaml", "--attestations", ".", "--param-file", "{h}"],
    ["policy", "sign", "{h}", "--key", "k.key", "--out", "signed.json"],
    ["policy", "sign", "layout.yaml", "--key", "{h}", "--out", "signed.json"],
    ["sign", "{h}", "--key", "k.key", "--out", "out.json"],
    ["sign", "st.json", "--key", "{h}", "--out", "out.json"],
    ["sign", "st.json", "--sigstore", "--identity-token", "@{h}", "--out", "out.json"],
    ["digest", "--check", "{h}", "model"],
    ["model", "verify", "model", "--signature", "{h}", "--key", "k.pub"],
    ["model", "verify", "model", "--key", "{h}"],
    ["model", "verify", "model", "--certificate-chain", "{h}"],
    ["attest", "eval", "--model", "model", "--metrics", "{h}", "--out", "eval.json"],
    ["attest", "train", "--model", "model", "--metrics", "{h}", "--out", "t.json", "--no-git"],
    ["attest", "train", "--model", "model", "--config", "{h}", "--out", "t.json", "--no-git"],
    ["schema", "statement", "--validate", "{h}"],
]


def _hostile(kind: str, work: Path, name: str) -> Path:
    """A path ending in `name` that is /dev/zero or a FIFO with no writer."""
    path = work / name
    if kind == "devzero":
        path.symlink_to("/dev/zero")
    else:
        os.mkfifo(path)
    return path


@pytest.mark.parametrize("kind", ["devzero", "fifo"])
@pytest.mark.parametrize("command", NON_REGULAR_CASES, ids=lambda c: " ".join(c[:3]))
def test_non_regular_inputs_are_refused_fast(work: Path, kind: str, command: list[str]) -> None:
    suffix = ".yaml" if "--config" in command or "--param-file" in command else ".json"
    hostile = _hostile(kind, work, "hostile" + suffix)
    started = time.monotonic()
    result = run_cli(*[a.format(h=hostile) for a in command])
    assert time.monotonic() - started < 5
    one_line_error(result)
    assert "not a regular file" in result.err, result


@pytest.mark.parametrize("kind", ["devzero", "fifo"])
def test_non_regular_trusted_root_is_refused(tmp_path: Path, kind: str) -> None:
    from mlprov.errors import InputError
    from mlprov.signing.sigstore_bundle import load_trusted_root

    with pytest.raises(InputError, match="not a regular file"):
        load_trusted_root(_hostile(kind, tmp_path, "root.json"))


def test_reader_never_reads_past_its_limit(tmp_path: Path) -> None:
    from mlprov.errors import InputError
    from mlprov.fsio import read_input

    path = tmp_path / "f"
    path.write_bytes(b"x" * 100)
    assert read_input(path, limit=100, what="file") == b"x" * 100
    with pytest.raises(InputError, match="larger than 99 bytes"):
        read_input(path, limit=99, what="file")
    with pytest.raises(InputError, match="is a directory"):
        read_input(tmp_path, limit=99, what="file")
    with pytest.raises(InputError, match="no such file"):
        read_input(tmp_path / "nope", limit=99, what="file")


# --- YAML aliases ("billion laughs") -----------------------------------------------------


def _laughs(prefix: str, levels: int = 9) -> str:
    """Nine levels of nine aliases each: 9**9 (387 million) strings once expanded."""
    lines = [prefix + 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for previous, name in zip("abcdefghi", "bcdefghij"[: levels - 1], strict=False):
        lines.append(f"{prefix}{name}: &{name} [" + ", ".join([f"*{previous}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def _laughs_layout() -> str:
    return "expires: '2030-01-01T00:00:00Z'\nsteps: []\nx-laughs:\n" + _laughs("  ")


def test_billion_laughs_sizes_match_the_issue() -> None:
    assert len(_laughs_layout()) <= 562  # the issue's 562-byte layout
    assert len(_laughs("")) <= 520  # and its 520-byte parameter file


@pytest.mark.parametrize(
    "command",
    [
        ["policy", "lint", "laughs.yaml"],
        ["policy", "check", "laughs.yaml", "--attestations", "."],
        ["policy", "sign", "laughs.yaml", "--key", "k.key", "--out", "signed.json"],
        ["policy", "lint", "layout.yaml", "--param-file", "params.yaml"],
        ["policy", "check", "layout.yaml", "--attestations", ".", "--param-file", "params.yaml"],
        ["attest", "train", "--model", "model", "--config", "params.yaml", "--out", "t.json"],
        [
            "attest",
            "eval",
            "--model",
            "model",
            "--metrics",
            "metrics.json",
            "--config",
            "params.yaml",
            "--out",
            "e.json",
        ],
        ["schema", "layout", "--validate", "laughs.yaml"],
    ],
    ids=lambda c: " ".join(c[:2]) + (" " + c[c.index("--config")] if "--config" in c else ""),
)
def test_yaml_aliases_cannot_explode(work: Path, command: list[str]) -> None:
    (work / "laughs.yaml").write_text(_laughs_layout())
    (work / "params.yaml").write_text(_laughs(""))
    started = time.monotonic()
    result = run_cli(*command)
    assert time.monotonic() - started < 1
    one_line_error(result)
    assert "aliases expand to more than" in result.err


def test_yaml_alias_cycles_and_depth_are_refused() -> None:
    from mlprov.errors import InputError
    from mlprov.yamlio import MAX_YAML_DEPTH, load_yaml

    with pytest.raises(InputError, match="contains it"):
        load_yaml("a: &a [1, *a]", source="doc")
    with pytest.raises(InputError, match="nested deeper"):
        load_yaml("[" * (MAX_YAML_DEPTH + 1) + "]" * (MAX_YAML_DEPTH + 1), source="doc")
    # depth reached only through aliases counts too
    chain = ["l0: &l0 [x]"] + [f"l{i}: &l{i} [*l{i - 1}]" for i in range(1, MAX_YAML_DEPTH + 2)]
    with pytest.raises(InputError, match="nested deeper"):
        load_yaml("\n".join(chain), source="doc")
    with pytest.raises(InputError, match="month must be in 1"):
        load_yaml("a: 2020-13-45", source="doc")


def test_yaml_a_few_shared_values_still_load() -> None:
    """PyYAML writes `&id001` for shared objects: such documents stay readable."""
    import yaml

    from mlprov.yamlio import load_yaml

    shared = ["alice"]
    text = yaml.safe_dump({"a": shared, "b": shared})
    assert "&id001" in text
    assert load_yaml(text, source="doc") == {"a": ["alice"], "b": ["alice"]}


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# --- CEL budget ----------------------------------------------------------------------------

_HUNDRED = "[" + ", ".join(str(i) for i in range(100)) + "]"
COSTLY_RULES = {
    "100x100x100 all()": f"{_HUNDRED}.all(a, {_HUNDRED}.all(b, {_HUNDRED}.all(c, a + b + c >= 0)))",
    "75 nested parentheses": "(" * 75 + "true" + ")" * 75,
    "1,000 && terms": " && ".join(["predicate.epochs == 3"] * 1000),
}


def _cel_layout(work: Path, rule: str) -> Path:
    layout = {
        "expires": "2099-01-01T00:00:00Z",
        "functionaries": {"trainer": {"publicKeyPath": "k.pub"}},
        "steps": [
            {
                "name": "train",
                "expectedPredicates": [
                    {
                        "predicateType": "https://slsa.dev/provenance/v1",
                        "functionaries": ["trainer"],
                        "expectedAttributes": [{"rule": rule}],
                    }
                ],
            }
        ],
    }
    path = work / "cel-layout.yaml"
    path.write_text(json.dumps(layout))
    return path


def _signed_claim(work: Path, subjects: int = 1) -> None:
    statement = json.loads(json.dumps(STATEMENT))
    statement["subject"] = [
        {"name": f"f{i}", "digest": {"sha256": hashlib.sha256(b"%d" % i).hexdigest()}}
        for i in range(subjects)
    ]
    statement["predicate"]["epochs"] = 3
    (work / "claim.json").write_text(json.dumps(statement))
    (work / "att").mkdir()
    args = ["sign", "claim.json", "--key", "k.key", "--out", "att/train.intoto.json"]
    assert run_cli(*args).code == 0


@pytest.mark.parametrize("name", COSTLY_RULES)
@pytest.mark.parametrize("command", ["lint", "check"])
def test_costly_cel_is_refused_by_lint_and_check_alike(work: Path, name: str, command: str) -> None:
    layout = _cel_layout(work, COSTLY_RULES[name])
    _signed_claim(work)
    extra = ["--attestations", "att"] if command == "check" else []
    started = time.monotonic()
    result = run_cli("policy", command, layout, *extra)
    assert time.monotonic() - started < 2
    one_line_error(result)
    assert f"{layout}: step train: CEL rule" in result.err
    assert "too costly" in result.err or "nested too deeply" in result.err


def test_cel_within_budget_still_runs(work: Path) -> None:
    rule = " && ".join(["predicate.epochs == 3"] * 20) + " && (((true)))"
    _signed_claim(work)
    result = run_cli("policy", "check", _cel_layout(work, rule), "--attestations", "att")
    assert result.code == 0, result


def test_cel_time_limit_names_layout_and_rule(work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A rule cheap on paper but slow on the claim (300 subjects, cubed) is cut off."""
    from mlprov.policy import attribute_rules

    monkeypatch.setattr(attribute_rules, "CEL_TIME_LIMIT", 0.5)
    rule = "subject.all(a, subject.all(b, subject.all(c, a.name != c.name || a == c)))"
    layout = _cel_layout(work, rule)
    _signed_claim(work, subjects=300)
    assert run_cli("policy", "lint", layout).code == 0
    started = time.monotonic()
    result = run_cli("policy", "check", layout, "--attestations", "att")
    assert time.monotonic() - started < 5
    one_line_error(result)
    assert f"{layout}: step train: CEL rule 'subject.all(" in result.err
    assert "ran past its time limit of 0.5 s on att/train.intoto.json" in result.err


# --- junk signatures -----------------------------------------------------------------------


def _junk(envelope: dict[str, object], count: int) -> dict[str, object]:
    junk = {"keyid": "junk", "sig": _b64(b"\x30" + os.urandom(70))}
    signatures = list(envelope["signatures"])  # type: ignore[call-overload]
    return {**envelope, "signatures": signatures + [junk] * count}


@pytest.mark.parametrize(
    "command",
    [
        ["verify", "junk.intoto.json", "--key", "k.pub"],
        ["store", "add", "junk.intoto.json", "--key", "k.pub"],
        ["model", "verify", "model", "--signature", "junk.sig", "--key", "k.pub"],
    ],
    ids=lambda c: " ".join(c[:2]),
)
def test_100000_junk_signatures_are_refused_before_any_crypto(
    work: Path, command: list[str]
) -> None:
    from mlprov.signing.dsse import MAX_SIGNATURES

    envelope = json.loads((work / "st.intoto.json").read_bytes())
    (work / "junk.intoto.json").write_text(json.dumps(_junk(envelope, 100_000)))
    bundle = json.loads((work / "model.sig").read_bytes())
    bundle["dsseEnvelope"] = _junk(bundle["dsseEnvelope"], 100_000)
    (work / "junk.sig").write_text(json.dumps(bundle))
    assert (work / "junk.intoto.json").stat().st_size > 10_000_000
    started = time.monotonic()
    result = run_cli(*command)
    assert time.monotonic() - started < 3
    one_line_error(result)
    assert f"100001 signatures, more than the {MAX_SIGNATURES} mlprov accepts" in result.err


def test_signatures_up_to_the_cap_still_verify(work: Path) -> None:
    from mlprov.signing.dsse import MAX_SIGNATURES

    envelope = json.loads((work / "st.intoto.json").read_bytes())
    (work / "some.intoto.json").write_text(json.dumps(_junk(envelope, MAX_SIGNATURES - 1)))
    assert run_cli("verify", "some.intoto.json", "--key", "k.pub").code == 0
    (work / "more.intoto.json").write_text(json.dumps(_junk(envelope, MAX_SIGNATURES)))
    one_line_error(run_cli("verify", "more.intoto.json", "--key", "k.pub"))


def test_bundle_with_too_many_certificates_is_refused(work: Path) -> None:
    from mlprov.signing.dsse import MAX_SIGNATURES

    bundle = json.loads((work / "model.sig").read_bytes())
    bundle["verificationMaterial"] = {
        "x509CertificateChain": {"certificates": [{"rawBytes": "AAAA"}] * (MAX_SIGNATURES + 1)}
    }
    (work / "certs.sig").write_text(json.dumps(bundle))
    result = run_cli("model", "verify", "model", "--signature", "certs.sig", "--key", "k.pub")
    one_line_error(result)
    assert f"{MAX_SIGNATURES + 1} certificates" in result.err


# --- one bad line of a .intoto.jsonl -----------------------------------------------------------


def test_bad_jsonl_lines_are_reported_and_the_good_ones_read(work: Path) -> None:
    _signed_claim(work)
    good = json.dumps(json.loads((work / "att" / "train.intoto.json").read_bytes())).encode()
    (work / "att" / "train.intoto.json").unlink()
    lines = [b"not json", good, b'{"payloadType": 1}', b"", b"[1]"]
    (work / "att" / "train.intoto.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    layout = _cel_layout(work, "predicate.epochs == 3")
    result = run_cli("policy", "check", layout, "--attestations", "att")
    assert result.code == 0, result
    skipped = [line for line in result.out.splitlines() if line.startswith("skipped")]
    assert [s.split()[1] for s in skipped] == [
        "att/train.intoto.jsonl:1:",
        "att/train.intoto.jsonl:3:",
        "att/train.intoto.jsonl:5:",
    ]
    assert "not valid JSON" in skipped[0]
    # verify stays strict: a bad line is an error there
    one_line_error(run_cli("verify", "att/train.intoto.jsonl", "--key", "k.pub"))


# --- names printed raw -------------------------------------------------------------------------

FORGED = "evil\nsha256:" + "0" * 64 + "  fake"
ANSI = "\x1b[31mred\x1b[0m"


def _no_raw_controls(text: str) -> None:
    assert "\x1b" not in text
    assert not any(ord(c) < 0x20 and c != "\n" for c in text)


def test_display_name_quotes_like_git() -> None:
    from mlprov.cli._common import display_name, one_line

    assert display_name("plain name.bin") == "plain name.bin"
    assert display_name("données/é.bin") == "données/é.bin"
    assert display_name(FORGED) == '"evil\\nsha256:' + "0" * 64 + '  fake"'
    assert display_name(ANSI) == '"\\x1b[31mred\\x1b[0m"'
    assert display_name('a"b\\c') == '"a\\"b\\\\c"'
    assert display_name("rtl\u202eexe.txt") == '"rtl\\u202eexe.txt"'
    assert display_name("bad\udcffbyte") == '"bad\\xffbyte"'
    assert one_line("x: a\nb") == "x: a\\nb"


def test_digest_files_cannot_forge_a_line(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / FORGED).write_bytes(b"x")
    (tree / ANSI).write_bytes(b"y")
    result = run_cli("digest", tree, "--files")
    assert result.code == 0, result
    lines = result.out.splitlines()
    assert len(lines) == 3
    assert not any(line.startswith("sha256:" + "0" * 64) for line in lines)
    assert any(line.endswith('"evil\\nsha256:' + "0" * 64 + '  fake"') for line in lines)
    _no_raw_controls(result.out)
    listed = json.loads(run_cli("digest", tree, "--json").out)[0]["files"]
    assert {entry["path"] for entry in listed} == {FORGED, ANSI}  # JSON unchanged


def test_digest_check_and_model_verify_quote_names(work: Path) -> None:
    assert run_cli("digest", "model", "--manifest-out", "m.json").code == 0
    (work / "model" / FORGED).write_bytes(b"x")
    (work / "model" / ANSI).write_bytes(b"y")
    for result in (
        run_cli("digest", "--check", "m.json", "model"),
        run_cli("model", "verify", "model", "--key", "k.pub"),
    ):
        assert result.code == 1, result
        _no_raw_controls(result.out + result.err)
        added = [line for line in (result.out + result.err).splitlines() if "added" in line]
        assert any('"evil\\nsha256:' in line for line in added), result


def _statement_named(name: str) -> dict[str, object]:
    statement = json.loads(json.dumps(STATEMENT))
    statement["subject"][0]["name"] = name
    statement["predicate"]["buildDefinition"]["internalParameters"] = {"step": ANSI}
    return statement


def test_store_lineage_and_verify_quote_names(work: Path) -> None:
    (work / "evil.json").write_text(json.dumps(_statement_named(FORGED + ANSI)))
    assert run_cli("sign", "evil.json", "--key", "k.key", "--out", "evil.intoto.json").code == 0
    outputs = [
        run_cli("verify", "evil.intoto.json", "--key", "k.pub", "--subject-path", "model.bin"),
        run_cli("store", "add", "evil.intoto.json", "--key", "k.pub"),
        run_cli("store", "ls"),
        run_cli("lineage", "model.bin", "--up"),
    ]
    digest = json.loads(run_cli("store", "ls", "--json").out)[0]["digest"]
    outputs.append(run_cli("store", "show", digest))
    for result in outputs:
        assert "Traceback" not in result.err, result
        _no_raw_controls(result.out + result.err)
        assert not any(line.startswith("sha256:" + "0" * 64) for line in result.out.splitlines())
    assert '"evil\\nsha256:' in outputs[2].out  # store ls quotes the subject name


def test_policy_report_and_errors_stay_one_line(work: Path) -> None:
    (work / "att").mkdir()
    (work / "att" / (FORGED + ".json")).write_text("{}")
    result = run_cli("policy", "check", "layout.yaml", "--attestations", "att")
    _no_raw_controls(result.out + result.err)
    assert any(
        line.startswith("skipped") and "evil\\nsha256" in line for line in result.out.splitlines()
    )
    one_line_error(run_cli("verify", work / (FORGED + ANSI), "--key", "k.pub"))


# --- option values -----------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["abc", "nan", "1.5", "-0.1", "inf"])
def test_policy_init_min_accuracy_is_checked(work: Path, value: str) -> None:
    result = run_cli("policy", "init", "--out", "l.yaml", "--key", "k.pub", "--min-accuracy", value)
    one_line_error(result)
    assert "--min-accuracy" in result.err
    assert not (work / "l.yaml").exists()
    assert (
        run_cli(
            "policy", "init", "--out", "l.yaml", "--key", "k.pub", "--min-accuracy", "0.75"
        ).code
        == 0
    )
    assert "min_score: 0.75" in (work / "l.yaml").read_text()
