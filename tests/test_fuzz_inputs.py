"""Fuzzing every parser of outside files through the CLI (issue #11).

Valid documents are made here (keys, a signed envelope, an OMS bundle, a layout, a
manifest, a `.intoto.jsonl`), then mutated: bytes flipped, inserted, deleted, truncated
or repeated, and JSON values replaced by random or hostile ones, payloads re-signed so
the parser behind the signature check is reached too. Whatever comes in, mlprov must
exit 0, 1 or 2, never with a traceback, and an exit 2 is one line. Hypothesis runs
derandomized with a bounded number of examples, so the suite stays fast and repeatable.
"""

from __future__ import annotations

import base64
import copy
import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import CliResult, run_cli, shared_testdata, time_limit

FUZZ = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

STATEMENT: dict[str, Any] = {
    "_type": "https://in-toto.io/Statement/v1",
    "subject": [
        {
            "name": "model.bin",
            "digest": {"sha256": "7f" * 32},
        }
    ],
    "predicateType": "https://slsa.dev/provenance/v1",
    "predicate": {
        "buildDefinition": {
            "buildType": "https://mlprov.dev/buildtypes/training/v1",
            "externalParameters": {"epochs": 3, "lr": 0.01},
            "resolvedDependencies": [
                {"name": "train", "digest": {"sha256": "ab" * 32}},
            ],
        },
        "runDetails": {"builder": {"id": "https://ci.example.com"}},
    },
}

LAYOUT = """\
expires: "2099-01-01T00:00:00Z"
parameters:
  model: model.bin
  min_epochs: 2
functionaries:
  trainer:
    publicKeyPath: "k.pub"
steps:
  - name: train
    expectedMaterials: ["ALLOW *"]
    expectedProducts: ["CREATE {model}", "DISALLOW *"]
    expectedPredicates:
      - predicateType: https://slsa.dev/provenance/v1
        functionaries: [trainer]
        expectedAttributes:
          - rule: "predicate.buildDefinition.externalParameters.epochs >= {min_epochs}"
          - rule: "subject.all(s, s.name.startsWith('model'))"
            warn: true
"""


@pytest.fixture(autouse=True)
def _bounded_time() -> Iterator[None]:
    """A hang fails the test rather than the whole suite."""
    with time_limit(120):
        yield


class Corpus:
    """Valid documents made once per module, and a scratch file for each example."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, name: str) -> Path:
        return self.root / name

    def bytes(self, name: str) -> bytes:
        return (self.root / name).read_bytes()

    def json(self, name: str) -> Any:
        return json.loads(self.bytes(name))

    def write(self, name: str, data: bytes) -> Path:
        path = self.root / "cases" / name
        path.write_bytes(data)
        return path

    def model_verify(self, signature: Path) -> CliResult:
        """`mlprov model verify` of the corpus model against `signature`, with the corpus key."""
        model, key = self.root / "model", self.root / "k.pub"
        return run_cli("model", "verify", model, "--signature", signature, "--key", key)

    def sign(self, payload: bytes, payload_type: str = "application/vnd.in-toto+json") -> bytes:
        """A DSSE envelope over `payload`, validly signed with the corpus key."""
        from mlprov.signing.dsse import sign_envelope
        from mlprov.signing.keys import load_signer

        signer = load_signer(str(self.root / "k.key"))
        return sign_envelope(payload, [signer], payload_type=payload_type).to_json()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    root = tmp_path_factory.mktemp("fuzz")
    assert run_cli("keygen", "--out", root / "k", "--no-password").code == 0
    model = root / "model"
    (model / "sub").mkdir(parents=True)
    (model / "model.bin").write_bytes(b"weights\n")
    (model / "sub" / "config.json").write_text('{"layers": 2}')
    (root / "st.json").write_text(json.dumps(STATEMENT, indent=1))
    args = ["sign", root / "st.json", "--key", root / "k.key", "--out", root / "env.json"]
    assert run_cli(*args).code == 0, "sign"
    args = ["model", "sign", model, "--key", root / "k.key", "--out", root / "model.sig"]
    assert run_cli(*args).code == 0, "model sign"
    assert run_cli("digest", model, "--manifest-out", root / "manifest.json").code == 0
    (root / "layout.yaml").write_text(LAYOUT)
    (root / "layout.json").write_text(json.dumps(_yaml(LAYOUT)))
    (root / "params.yaml").write_text("model: model.bin\nmin_epochs: 3\n")
    envelope = json.dumps(json.loads((root / "env.json").read_bytes()))
    second = Corpus(root).sign(json.dumps({**STATEMENT, "subject": []}).encode()).decode()
    (root / "train.intoto.jsonl").write_text(envelope + "\n" + second + "\n")
    (root / "cases").mkdir()
    shutil.copy(root / "k.pub", root / "cases" / "k.pub")  # layouts written there name it
    return Corpus(root)


def _yaml(text: str) -> Any:
    import yaml

    return yaml.safe_load(text)


def well_behaved(result: CliResult) -> None:
    """Exit 0, 1 or 2; never a traceback; a bad-input error is exactly one line."""
    assert result.code in (0, 1, 2), result
    assert "Traceback" not in result.err and "Traceback" not in result.out, result
    if result.code == 2:
        assert result.err.count("\n") == 1, result
        assert result.err.startswith("mlprov: error: "), result


# --- strategies --------------------------------------------------------------------------------

HOSTILE_TEXT = [
    "",
    "\x00",
    "\x1b[2J",
    "a\nb",
    "../../etc/passwd",
    "/abs/path",
    "*",
    "{model}",
    "\ud800",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
    "9" * 5000,
    "x" * 10_000,
]
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from([2**64, -(2**63) - 1, 10**400]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.sampled_from(HOSTILE_TEXT),
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(doc, dict):
        for key, value in doc.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(doc, list):
        for index, value in enumerate(doc):
            yield from _paths(value, (*prefix, index))


@st.composite
def mutated_json(draw: st.DrawFn, doc: Any) -> Any:
    """`doc` with one to three values replaced, removed or added at random places."""
    doc = copy.deepcopy(doc)
    for _ in range(draw(st.integers(1, 3))):
        paths = list(_paths(doc))
        path = draw(st.sampled_from(paths))
        value = draw(json_values)
        if not path:
            doc = value
            continue
        parent = doc
        for step in path[:-1]:
            parent = parent[step]
        action = draw(st.sampled_from(["replace", "remove", "add"]))
        if action == "replace":
            parent[path[-1]] = value
        elif action == "remove":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(st.text(max_size=10))] = value
        else:
            parent.insert(path[-1], value)
    return doc


@st.composite
def mutated_bytes(draw: st.DrawFn, data: bytes) -> bytes:
    """`data` with a few bytes flipped, inserted, deleted, truncated or repeated."""
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 6))):
        if not out:
            out.extend(draw(st.binary(max_size=8)))
            continue
        at = draw(st.integers(0, len(out) - 1))
        action = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "repeat", "byte"]))
        if action == "flip":
            out[at] ^= 1 << draw(st.integers(0, 7))
        elif action == "insert":
            out[at:at] = draw(
                st.sampled_from(
                    [b"{", b"[", b'"', b"\\", b"\x00", b"\xff", b"&a", b"*a", b"\n", b"!!binary"]
                )
            )
        elif action == "delete":
            del out[at : at + draw(st.integers(1, 16))]
        elif action == "truncate":
            del out[at:]
        elif action == "repeat":
            out[at:at] = out[at : at + draw(st.integers(1, 64))] * draw(st.integers(2, 50))
        else:
            out[at] = draw(st.integers(0, 255))
    return bytes(out)


def _dump(doc: Any) -> bytes:
    return json.dumps(doc, ensure_ascii=False).encode("utf-8", "surrogatepass")


def _yaml_dump(doc: Any) -> bytes:
    import yaml

    return yaml.safe_dump(doc, allow_unicode=True).encode("utf-8", "surrogatepass")


def _mutated(
    draw: Callable[[Any], Any], raw: bytes, doc: Any, dump: Callable[[Any], bytes] = _dump
) -> bytes:
    """Either a byte mutation of `raw` or a structure mutation of `doc` (its parsed form)."""
    if draw(st.booleans()):
        return draw(mutated_bytes(raw))  # type: ignore[no-any-return]
    return dump(draw(mutated_json(doc)))


def _mutated_doc(draw: Callable[[Any], Any], corpus: Corpus, name: str) -> bytes:
    """A byte or JSON-structure mutation of a valid corpus document."""
    return _mutated(draw, corpus.bytes(name), corpus.json(name))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# --- DSSE envelopes and Statements -------------------------------------------------------------


@FUZZ
@given(data=st.data())
def test_fuzz_dsse_envelopes(corpus: Corpus, data: st.DataObject) -> None:
    case = corpus.write("env.json", _mutated_doc(data.draw, corpus, "env.json"))
    well_behaved(run_cli("verify", case, "--key", corpus.path("k.pub")))


@FUZZ
@given(data=st.data())
def test_fuzz_signed_statements(corpus: Corpus, data: st.DataObject) -> None:
    """Mutated Statements, validly signed: the parser behind the signature is reached."""
    payload = _mutated(data.draw, corpus.bytes("st.json"), STATEMENT)
    case = corpus.write("signed.json", corpus.sign(payload))
    args = ["verify", case, "--key", corpus.path("k.pub"), "--subject-path", corpus.path("model")]
    well_behaved(run_cli(*args))
    well_behaved(run_cli("schema", "statement", "--validate", corpus.write("st.json", payload)))


# --- Sigstore / OMS bundles --------------------------------------------------------------------


@FUZZ
@given(data=st.data())
def test_fuzz_oms_key_bundles(corpus: Corpus, data: st.DataObject) -> None:
    case = corpus.write("model.sig", _mutated_doc(data.draw, corpus, "model.sig"))
    well_behaved(corpus.model_verify(case))
    well_behaved(run_cli("verify", case, "--key", corpus.path("k.pub")))


@FUZZ
@given(data=st.data())
def test_fuzz_oms_bundle_payloads(corpus: Corpus, data: st.DataObject) -> None:
    """An OMS bundle whose re-signed Statement is mutated (resources, serialization, names)."""
    bundle = corpus.json("model.sig")
    statement = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
    payload = _dump(data.draw(mutated_json(statement)))
    bundle["dsseEnvelope"] = json.loads(corpus.sign(payload))
    case = corpus.write("model.sig", _dump(bundle))
    well_behaved(corpus.model_verify(case))


@settings(FUZZ, max_examples=30)
@given(data=st.data())
def test_fuzz_sigstore_keyless_bundles(corpus: Corpus, data: st.DataObject) -> None:
    """The peer's production Sigstore bundle, mutated, verified keylessly and offline."""
    peer = shared_testdata("oms", "v1.0.0-sigstore")
    root = shared_testdata("sigstore", "production_trusted_root.json")
    original = corpus.root / "keyless.sig"
    if not original.exists():
        shutil.copy(peer / "model.sig", original)
    case = corpus.write("keyless.sig", _mutated_doc(data.draw, corpus, "keyless.sig"))
    args = [
        "model", "verify", peer / "signme-1", "--signature", case, "--trusted-root", root,
        "--identity", "stefanb@us.ibm.com", "--issuer", "https://sigstore.verify.ibm.com/oauth2",
    ]  # fmt: skip
    well_behaved(run_cli(*args))


# --- layouts and parameter files --------------------------------------------------------------


@FUZZ
@given(data=st.data())
def test_fuzz_yaml_layouts(corpus: Corpus, data: st.DataObject) -> None:
    text = _mutated(data.draw, corpus.bytes("layout.yaml"), _yaml(LAYOUT), _yaml_dump)
    case = corpus.write("layout.yaml", text)
    well_behaved(run_cli("policy", "lint", case))


@FUZZ
@given(data=st.data())
def test_fuzz_json_layouts_and_check(corpus: Corpus, data: st.DataObject) -> None:
    case = corpus.write("layout.json", _mutated_doc(data.draw, corpus, "layout.json"))
    well_behaved(run_cli("policy", "lint", case))
    args = ["policy", "check", case, "--attestations", corpus.path("train.intoto.jsonl")]
    well_behaved(run_cli(*args))


@FUZZ
@given(data=st.data())
def test_fuzz_parameter_files(corpus: Corpus, data: st.DataObject) -> None:
    params = {"model": "model.bin", "min_epochs": 3}
    case = corpus.write("params.yaml", _mutated(data.draw, corpus.bytes("params.yaml"), params))
    well_behaved(run_cli("policy", "lint", corpus.path("layout.yaml"), "--param-file", case))


RULES = [
    "predicate.buildDefinition.externalParameters.epochs >= 2",
    "subject.all(s, s.name.startsWith('model'))",
    "subject.exists_one(s, s.digest.sha256.size() == 64)",
    "predicate.buildDefinition.resolvedDependencies.map(d, d.name).filter(n, n == 'train')"
    ".size() > 0",
    "has(predicate.runDetails.builder.id) && predicateType.endsWith('/v1')",
    "double(predicate.buildDefinition.externalParameters.lr) < 0.1 ? true : false",
    "[1, 2, 3].reduce(r, i, 0, r + i) == 6 || {'a': 1}['a'] in [1]"
    " && timestamp('2020-01-01T00:00:00Z') < timestamp('2030-01-01T00:00:00Z')",
    "size(subject) / 0 == 1 || 'x'.matches('^(a+)+$') || bytes('x') + b'y' == b'xy'",
]


@settings(FUZZ, max_examples=100)
@given(data=st.data())
def test_fuzz_cel_rules(corpus: Corpus, data: st.DataObject) -> None:
    """Mutated CEL rules, linted and run on real claims: lint and check agree, never crash."""
    rule = data.draw(st.sampled_from(RULES))
    if data.draw(st.booleans()):
        rule = data.draw(mutated_bytes(rule.encode())).decode("utf-8", "replace")
    else:
        other = data.draw(st.sampled_from(RULES))
        rule = data.draw(
            st.sampled_from(
                [
                    f"({rule}) && !({other})",
                    f"[{rule}, {other}][0]",
                    f"{rule}.size()",
                    f"subject.all(x, {other})",
                    " || ".join([rule] * 40),  # a long chain of terms that may all fail
                ]
            )
        )
    layout = _yaml(LAYOUT)
    layout["steps"][0]["expectedPredicates"][0]["expectedAttributes"] = [{"rule": rule}]
    case = corpus.write("cel-layout.json", _dump(layout))
    lint = run_cli("policy", "lint", case)
    well_behaved(lint)
    check = run_cli("policy", "check", case, "--attestations", corpus.path("train.intoto.jsonl"))
    well_behaved(check)
    # lint refuses what check refuses; only a run past the time limit is check's alone
    over_time = "ran past its time limit" in check.err
    assert (lint.code == 2) == (check.code == 2) or over_time, (lint, check)


# --- manifests and .intoto.jsonl ---------------------------------------------------------------


@FUZZ
@given(data=st.data())
def test_fuzz_manifests(corpus: Corpus, data: st.DataObject) -> None:
    case = corpus.write("manifest.json", _mutated_doc(data.draw, corpus, "manifest.json"))
    well_behaved(run_cli("digest", "--check", case, corpus.path("model"), "--no-cache"))


@FUZZ
@given(data=st.data())
def test_fuzz_intoto_jsonl(corpus: Corpus, data: st.DataObject) -> None:
    lines = corpus.bytes("train.intoto.jsonl").splitlines()
    lines = data.draw(st.lists(st.sampled_from(lines) | st.binary(max_size=40), max_size=5))
    if lines and data.draw(st.booleans()):
        at = data.draw(st.integers(0, len(lines) - 1))
        lines[at] = data.draw(mutated_bytes(lines[at]))
    case = corpus.write("train.intoto.jsonl", b"\n".join(lines) + b"\n")
    args = ["policy", "check", corpus.path("layout.yaml"), "--attestations", case]
    well_behaved(run_cli(*args))
    well_behaved(run_cli("verify", case, "--key", corpus.path("k.pub")))


@settings(FUZZ, max_examples=100)
@given(text=st.text(max_size=200) | st.binary(max_size=200).map(lambda b: b.decode("latin-1")))
def test_fuzz_random_documents_everywhere(corpus: Corpus, text: str) -> None:
    """Random text, not derived from anything valid, through every reader at once."""
    raw = text.encode("utf-8", "surrogatepass")
    for name, command in (
        ("a.json", ["verify", "{f}", "--key", str(corpus.path("k.pub"))]),
        ("a.yaml", ["policy", "lint", "{f}"]),
        ("m.json", ["digest", "--check", "{f}", str(corpus.path("model")), "--no-cache"]),
        ("p.yaml", ["policy", "lint", str(corpus.path("layout.yaml")), "--param-file", "{f}"]),
        ("s.json", ["schema", "statement", "--validate", "{f}"]),
    ):
        case = corpus.write(name, raw)
        well_behaved(run_cli(*[a.format(f=case) for a in command]))
