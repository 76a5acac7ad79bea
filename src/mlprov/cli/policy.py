"""`mlprov policy`: check attestations against a layout (and leave a signed VSA), lint,
write a starter layout, sign a layout."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from mlprov.cli._common import (
    FiniteFloatRange,
    echo_json,
    force_option,
    json_option,
    load_cli_signer,
    one_line,
    staging_option,
    trust_cache_option,
)
from mlprov.errors import InputError
from mlprov.fsio import read_input, write_bytes_atomic

if TYPE_CHECKING:  # imported where used: this module is loaded for every policy command
    from securesystemslib.signer import Key

    from mlprov.policy import PolicyResult, ReleasedSubject
    from mlprov.policy.attestations import ClaimSet

CHECK_EPILOG = """\b
Examples:
  mlprov policy check layout.yaml --attestations out/ --junit gate.xml --summary gate.md
  mlprov policy check layout.yaml --attestations out/ --subject out/model \\
      --param min_accuracy=0.9 --layout-key owner.pub
  mlprov policy check layout.yaml --attestations out/ --subject out/model \\
      --vsa-out out/model.vsa.intoto.json --vsa-key gate.key \\
      --verifier-id https://ci.example.com/mlprov-gate
Exit status: 0 pass, 1 policy failure, 2 bad input (including a bad layout).
"""

LINT_EPILOG = """\b
Examples:
  mlprov policy lint layout.yaml
  mlprov policy lint layout.yaml --param min_accuracy=0.9 --json
"""

INIT_EPILOG = """\b
Examples:
  mlprov policy init --from out/attestations --subject out/lr-model \\
      --key data.pub --key trainer.pub --out layout.yaml
  mlprov policy init --out layout.yaml --key dataset=data.pub --key train=trainer.pub \\
      --key eval=trainer.pub
  mlprov policy init --out layout.yaml --key release.pub    # one key for every step
"""

SIGN_EPILOG = """\b
Examples:
  mlprov policy sign layout.yaml --key owner.key --out layout.signed.json
  mlprov policy check layout.signed.json --layout-key owner.pub --attestations out/
"""


@click.group(epilog="\b\nExample:\n  mlprov policy check layout.yaml --attestations out/\n")
def policy() -> None:
    """Evaluate attestations against in-toto attestation layouts."""


#: Largest --param-file read.
MAX_PARAM_FILE_BYTES = 1 << 20


def _parse_params(pairs: Sequence[str], files: Sequence[Path]) -> dict[str, str]:
    params: dict[str, str] = {}
    from mlprov.yamlio import load_yaml

    for path in files:
        data = read_input(path, limit=MAX_PARAM_FILE_BYTES, what="parameter file")
        doc = load_yaml(data, source=str(path))
        if not isinstance(doc, dict):
            raise InputError(f"{path}: parameters must be a mapping of name: value")
        params.update({str(k): str(v) for k, v in doc.items()})
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise InputError(f"--param {pair!r}: expected NAME=VALUE")
        params[name] = value
    return params


param_options = [
    click.option("--param", "params", multiple=True, metavar="NAME=VALUE", help="Set {NAME}."),
    click.option(
        "--param-file",
        "param_files",
        multiple=True,
        type=click.Path(path_type=Path, dir_okay=False, exists=True),
        help="YAML/JSON mapping of parameters (before --param).",
    ),
]


def _with_params(func: Any) -> Any:
    for option in reversed(param_options):
        func = option(func)
    return func


def _released(paths: Sequence[Path], *, trust_cache: bool) -> list[ReleasedSubject]:
    """The released artifacts, digested now (the digest cache only with --trust-cache)."""
    from mlprov.digest import DigestCache, digest_file, digest_tree
    from mlprov.policy import ReleasedSubject

    out = []
    cache = DigestCache() if trust_cache else None
    try:
        for path in paths:
            if path.is_dir():
                out.append(
                    ReleasedSubject(path.name, {"sha256": digest_tree(path, cache=cache).digest},
                                    "tree")
                )  # fmt: skip
            elif path.is_file():
                out.append(ReleasedSubject(path.name, {"sha256": digest_file(path)}, "file"))
            elif path.exists():
                raise InputError(f"--subject {path}: not a regular file or a directory")
            else:
                raise InputError(f"--subject {path}: no such file or directory")
    finally:
        if cache is not None:
            cache.close()
    return out


def _claims_from_store(location: str | None, released: list[ReleasedSubject]) -> ClaimSet:
    """The attestations a store holds in the lineage of each released subject.

    Every attestation about an artifact the subject was (transitively) made from, and
    about the subject itself (evaluations, earlier VSAs), read as its exact stored bytes
    and handed to the policy engine like files are: the store decides nothing.
    """
    from mlprov.policy.attestations import ClaimSet, Skipped, claim_from
    from mlprov.signing.files import parse_attestation
    from mlprov.store import open_store

    found = ClaimSet()
    with open_store(location) as store:
        digests: set[str] = set()
        for subject in (f"sha256:{s.digest['sha256']}" for s in released):
            graph = store.lineage_up(subject)
            for artifact in {subject, *graph.nodes}:
                digests.update(a.digest for a in store.ls(subject=artifact))
        for digest, raw in store.iter_raw(sorted(digests)):
            source = f"store:{digest}"
            try:
                claim = claim_from(parse_attestation(raw, source=source), file_name="")
            except InputError as exc:
                found.skipped.append(Skipped(source, str(exc)))
                continue
            found.claims.append(claim)
    return found


def _owner_keys(paths: Sequence[Path]) -> list[Key]:
    """The --layout-key keys; one key given twice (in any encoding) is refused."""
    from mlprov.signing.dsse import key_identity
    from mlprov.signing.keys import load_public_key

    keys: list[Key] = []
    seen: dict[str, Path] = {}
    for path in paths:
        key = load_public_key(path)
        identity = key_identity(key)
        if identity in seen:
            raise InputError(f"--layout-key {seen[identity]} and {path} are the same key")
        seen[identity] = path
        keys.append(key)
    return keys


def _is_classic(layout_path: Path) -> bool:
    from mlprov.policy.classic import is_classic_layout
    from mlprov.policy.loader import MAX_LAYOUT_BYTES

    return is_classic_layout(read_input(layout_path, limit=MAX_LAYOUT_BYTES, what="layout"))


def _check_classic(
    ctx: click.Context,
    layout_path: Path,
    attestation_paths: Sequence[Path],
    layout_keys: Sequence[Path],
    params: dict[str, str],
    *,
    as_json: bool,
    other: bool,
) -> None:
    """A classic in-toto v1 layout: verified by the in-toto library, links from one dir."""
    from mlprov.policy.classic import verify_classic

    if other:
        raise InputError(
            "a classic in-toto layout takes --attestations LINK_DIR, --layout-key and --param"
            " only (no --subject, --from-store or VSA)"
        )
    if len(attestation_paths) != 1:
        raise InputError("a classic in-toto layout takes one --attestations directory of links")
    result = verify_classic(
        layout_path,
        link_dir=attestation_paths[0],
        layout_keys=_owner_keys(layout_keys),
        params=params,
    )
    if as_json:
        echo_json({"passed": result.passed, "reason": result.reason, "layout": str(layout_path)})
    elif result.passed:
        click.echo(f"PASSED: {layout_path}: {result.reason} (classic in-toto layout)")
    else:
        click.echo(f"FAILED: {layout_path}: {result.reason}", err=True)
    if not result.passed:
        ctx.exit(1)


def _print_report(result: PolicyResult) -> None:
    for report in (result.layout, *result.steps):
        head = "layout" if report.name == "layout" else f"step {report.name}"
        click.echo(one_line(f"{head}  {'PASS' if report.passed else 'FAIL'}"))
        for r in report.results:
            where = f"  [{r.where}]" if r.where else ""
            click.echo(one_line(f"  {r.status:<4}  {r.rule}: {r.reason}{where}"))
    for source, reason in result.skipped:
        click.echo(one_line(f"skipped  {reason if source in reason else f'{source}: {reason}'}"))
    total = sum(len(r.results) for r in (result.layout, *result.steps))
    warnings = sum(1 for s in (result.layout, *result.steps) for r in s.results if r.warning)
    unchecked = " (layout signature not checked)" if result.layout_signature != "verified" else ""
    failures = result.failures
    if result.passed:
        click.echo(
            f"PASSED: {len(result.steps)} steps, {total} checks, {warnings} warning(s)"
            f"{unchecked}, {len(result.claims)} attestation(s) read"
        )
    else:
        step, first = failures[0]
        where = f" ({first.where})" if first.where else ""
        click.echo(
            one_line(
                f"FAILED: {len(failures)} of {total} checks failed; first: {step}: {first.rule}:"
                f" {first.reason}{where}"
            ),
            err=True,
        )


@policy.command(epilog=CHECK_EPILOG)
@click.argument("layout_path", metavar="LAYOUT", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--attestations",
    "attestation_paths",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Directory of *.json/*.jsonl attestations, or a file (repeatable).",
)
@click.option(
    "--from-store",
    is_flag=True,
    help="Also read the attestations in the --subject's lineage from the attestation store.",
)
@click.option(
    "--store",
    "store_location",
    metavar="PATH|URL",
    help="Store for --from-store: SQLite path or postgresql:// URL (default: $MLPROV_STORE).",
)
@click.option(
    "--subject",
    "subject_paths",
    multiple=True,
    type=click.Path(path_type=Path),
    help="The released artifact (file or directory); default: products of the last step.",
)
@_with_params
@click.option(
    "--layout-key",
    "layout_keys",
    multiple=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="Owner public key that must have signed the layout (repeatable: all must).",
)
@click.option("--vsa-out", type=click.Path(path_type=Path, dir_okay=False), help="Write a VSA.")
@click.option("--vsa-key", metavar="URI", help="Key that signs the VSA (path or signer URI).")
@click.option("--verifier-id", metavar="URI", help="verifier.id of the VSA.")
@click.option(
    "--resource-uri",
    metavar="URI",
    help="resourceUri of the VSA, an absolute URI (default: the file:// URI of the one"
    " --subject, or the subject's name when it is a purl or URI).",
)
@click.option(
    "--policy-uri",
    metavar="URI",
    help="policy.uri of the VSA, an absolute URI (default: the file:// URI of LAYOUT).",
)
@click.option(
    "--vsa-scheme",
    type=click.Choice(["rsa-pkcs1v15-sha256", "rsassa-pss-sha256"]),
    help="Signature scheme of an RSA --vsa-key (default: rsa-pkcs1v15-sha256, the one"
    " slsa-verifier checks).",
)
@click.option("--password-env", metavar="VAR", help="Environment variable with --vsa-key's pass.")
@click.option(
    "--trusted-root",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="Sigstore trusted root for keyless functionaries (offline).",
)
@staging_option
@click.option(
    "--require-signed-layout",
    is_flag=True,
    help="Refuse to evaluate a layout whose signature is not checked (needs --layout-key).",
)
@click.option(
    "--junit",
    "junit_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Also write the verdict as JUnit XML (a testcase per rule).",
)
@click.option(
    "--summary",
    "summary_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Also write a Markdown summary (on GitHub Actions it is added to the job summary).",
)
@trust_cache_option
@force_option
@json_option
@click.pass_context
def check(
    ctx: click.Context,
    layout_path: Path,
    attestation_paths: tuple[Path, ...],
    from_store: bool,
    store_location: str | None,
    subject_paths: tuple[Path, ...],
    params: tuple[str, ...],
    param_files: tuple[Path, ...],
    layout_keys: tuple[Path, ...],
    vsa_out: Path | None,
    vsa_key: str | None,
    verifier_id: str | None,
    resource_uri: str | None,
    policy_uri: str | None,
    vsa_scheme: str | None,
    password_env: str | None,
    trusted_root: Path | None,
    staging: bool,
    require_signed_layout: bool,
    junit_path: Path | None,
    summary_path: Path | None,
    trust_cache: bool,
    force: bool,
    as_json: bool,
) -> None:
    """Evaluate the attestations against LAYOUT; optionally write a signed VSA."""
    from mlprov.policy import collect_claims, evaluate, load_layout
    from mlprov.policy.vsa import default_resource_uri, file_uri, sign_vsa, vsa_statement
    from mlprov.signing.keys import with_rsa_scheme

    if require_signed_layout and not layout_keys:
        raise InputError("--require-signed-layout needs the owner keys: give --layout-key PUB")
    if not attestation_paths and not from_store:
        raise InputError("give --attestations DIR|FILE, or --from-store with --subject")
    if from_store and not subject_paths:
        raise InputError("--from-store needs --subject: the store is searched along its lineage")
    if store_location and not from_store:
        raise InputError("--store goes with --from-store")
    if _is_classic(layout_path):
        _check_classic(
            ctx, layout_path, attestation_paths, layout_keys, _parse_params(params, param_files),
            as_json=as_json, other=bool(from_store or vsa_out or subject_paths),
        )  # fmt: skip
        return
    if vsa_out and not (vsa_key and verifier_id):
        raise InputError("--vsa-out needs --vsa-key and --verifier-id")
    if (vsa_key or verifier_id) and not vsa_out:
        raise InputError("--vsa-key and --verifier-id need --vsa-out")
    from mlprov.fsio import check_writable

    for output in (vsa_out, junit_path, summary_path):
        if output is not None:
            check_writable(output, force=force)
    signer = load_cli_signer(vsa_key, password_env=password_env) if vsa_key else None
    if signer is not None and signer.public_key.keytype == "rsa":
        signer = with_rsa_scheme(signer, vsa_scheme or "rsa-pkcs1v15-sha256")
    elif vsa_scheme:
        raise InputError("--vsa-scheme is for an RSA --vsa-key")
    loaded = load_layout(
        layout_path,
        params=_parse_params(params, param_files),
        trusted_root=trusted_root,
        staging=staging,
    )
    owner_keys = _owner_keys(layout_keys)
    exclude = {layout_path, *([vsa_out] if vsa_out else [])}
    claims = collect_claims(list(attestation_paths), exclude=exclude)
    released = _released(subject_paths, trust_cache=trust_cache)
    if from_store:
        claims.merge(_claims_from_store(store_location, released))
    result = evaluate(
        loaded, claims, subjects=released, layout_keys=owner_keys, require_subject=bool(vsa_out)
    )
    vsa_digest = None
    if vsa_out and signer and verifier_id:
        if not result.subjects:
            raise InputError("the VSA needs a subject: give --subject PATH")
        statement = vsa_statement(
            result,
            loaded,
            verifier_id=verifier_id,
            resource_uri=resource_uri
            or default_resource_uri([s.name for s in result.subjects], subject_paths),
            policy_uri=policy_uri or file_uri(layout_path),
        )
        envelope = sign_vsa(statement, signer)
        data = envelope.to_json() + b"\n"
        write_bytes_atomic(vsa_out, data, force=force)
        import hashlib

        vsa_digest = hashlib.sha256(data).hexdigest()
    _ci_reports(result, layout_path, vsa_out, junit_path, summary_path, force=force, err=as_json)
    if as_json:
        out = result.to_dict()
        if vsa_out:
            out["vsa"] = {"path": str(vsa_out), "digest": {"sha256": vsa_digest}}
        echo_json(out)
    else:
        _print_report(result)
        if vsa_out:
            verdict = "PASSED" if result.passed else "FAILED"
            click.echo(f"wrote VSA ({verdict}) {vsa_out}")
    if not result.passed:
        ctx.exit(1)


def _ci_reports(
    result: PolicyResult,
    layout_path: Path,
    vsa_out: Path | None,
    junit_path: Path | None,
    summary_path: Path | None,
    *,
    force: bool,
    err: bool,
) -> None:
    """JUnit XML and Markdown files when asked; on GitHub Actions, annotations and the job
    summary (appended to $GITHUB_STEP_SUMMARY, as every step there does)."""
    from mlprov.cli import gate_reports

    layout = str(layout_path)
    if junit_path is not None:
        write_bytes_atomic(junit_path, gate_reports.junit_xml(result, layout=layout), force=force)
    markdown = gate_reports.markdown_summary(
        result, layout=layout, vsa=str(vsa_out) if vsa_out else None
    )
    if summary_path is not None:
        write_bytes_atomic(summary_path, markdown.encode(), force=force)
    if not gate_reports.on_github_actions():
        return
    for line in gate_reports.github_annotations(result):
        click.echo(line, err=err)
    job_summary = gate_reports.github_step_summary()
    if job_summary is not None:
        try:
            with job_summary.open("a", encoding="utf-8") as handle:
                handle.write(markdown + "\n")
        except OSError as exc:
            click.echo(f"mlprov: warning: cannot append to $GITHUB_STEP_SUMMARY ({exc})", err=True)


@policy.command(epilog=LINT_EPILOG)
@click.argument("layout_path", metavar="LAYOUT", type=click.Path(path_type=Path, dir_okay=False))
@_with_params
@json_option
def lint(
    layout_path: Path, params: tuple[str, ...], param_files: tuple[Path, ...], as_json: bool
) -> None:
    """Validate LAYOUT without attestations: schema, rules, CEL, references, expiry."""
    from mlprov.policy import load_layout

    if _is_classic(layout_path):
        from mlprov.policy.classic import load_classic

        layout_doc = load_classic(layout_path).get_payload()
        steps = [step.name for step in layout_doc.steps]
        if as_json:
            echo_json({"ok": True, "classic": True, "steps": steps, "expires": layout_doc.expires})
        else:
            click.echo(f"OK: {layout_path}: classic in-toto layout, {len(steps)} steps")
        return
    loaded = load_layout(layout_path, params=_parse_params(params, param_files))
    layout = loaded.layout
    notes = []
    if layout.expires <= datetime.now(UTC):
        notes.append(f"layout expired at {layout.expires.isoformat()}: every check will fail")
    if not layout.subjects:
        notes.append(
            "the layout binds no subject (no subjects: rule): a released --subject or a VSA"
            " is only checked to be a product of the last step that has products; say which"
            " step's product may ship"
        )
    from mlprov.policy.checks import KeyBindingRule

    binding = KeyBindingRule(layout, signed=loaded.envelope is not None).evaluate()
    if binding is not None and not binding.passed:
        notes.append(f"{binding.reason}: policy check refuses it")
    from mlprov.policy.engine import steps_by_signer

    for (_, kind), sharing in sorted(steps_by_signer(loaded).items(), key=lambda kv: kv[0][1]):
        if len(sharing) > 1:
            notes.append(
                f"steps {', '.join(sorted(sharing))} expect {kind} from the same functionary: an"
                " attestation of it counts only if its Statement records its step (a file"
                " name alone could be copied to the other step)"
            )
    rules = sum(
        len(s.material_rules) + len(s.product_rules) + sum(len(a) for a in s.attribute_rules)
        for s in loaded.steps
    )
    if as_json:
        echo_json(
            {
                "ok": True,
                "steps": [s.name for s in layout.steps],
                "functionaries": sorted(loaded.functionaries),
                "rules": rules,
                "signed": loaded.envelope is not None,
                "notes": notes,
            }
        )
        return
    for note in notes:
        click.echo(f"warning: {note}")
    click.echo(
        f"OK: {layout_path}: {len(layout.steps)} steps, {len(loaded.functionaries)}"
        f" functionaries, {rules} rules" + (", DSSE-signed" if loaded.envelope is not None else "")
    )


@policy.command(epilog=INIT_EPILOG)
@click.option(
    "--out",
    "out_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=Path("layout.yaml"),
    show_default=True,
    help="Where to write the layout.",
)
@click.option(
    "--key",
    "keys",
    multiple=True,
    metavar="[STEP=]PUB",
    help="Public key of a step's signer (dataset, train, eval); without STEP, of every step.",
)
@click.option(
    "--min-score",
    "--min-accuracy",
    "min_score",
    type=FiniteFloatRange(0.0, 1.0),
    default=0.5,
    show_default=True,
    help="Default of the layout's min_score parameter (the eval threshold), from 0 to 1.",
)
@click.option("--days", type=click.IntRange(min=1), default=365, show_default=True)
@click.option(
    "--from",
    "from_paths",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Write the layout from these signed attestations (directory or file; repeatable).",
)
@click.option(
    "--subject",
    "subject_path",
    type=click.Path(path_type=Path),
    help="With --from: the model the layout releases (file or directory).",
)
@force_option
@json_option
def init(
    out_path: Path,
    keys: tuple[str, ...],
    min_score: float,
    days: int,
    from_paths: tuple[Path, ...],
    subject_path: Path | None,
    force: bool,
    as_json: bool,
) -> None:
    """Write a commented starter layout for the dataset → train → eval → release pipeline,
    or (--from) one written from real attestations: their steps, artifacts, signers, metrics.
    """
    from mlprov.policy.starter import STEPS, starter_layout
    from mlprov.signing.keys import load_public_key

    expires = datetime.now(UTC) + timedelta(days=days)
    if from_paths or subject_path:
        _init_from(from_paths, subject_path, keys, expires, out_path, force=force, as_json=as_json)
        return

    chosen: dict[str, str] = {}
    for item in keys:
        step, sep, path = item.partition("=")
        if not sep:
            chosen.update({s: item for s in STEPS})
        elif step not in STEPS:
            raise InputError(f"--key {item}: unknown step {step!r} (one of {', '.join(STEPS)})")
        else:
            chosen[step] = path
    for path in set(chosen.values()):
        load_public_key(Path(path))  # refuse a bad key now, not at check time
    text = starter_layout(
        keys=chosen,
        expires=expires,
        min_accuracy=min_score,
        base_dir=out_path.parent,
        name=out_path.name,
    )
    write_bytes_atomic(out_path, text.encode(), force=force)
    if as_json:
        echo_json({"out": str(out_path), "steps": list(STEPS)})
    else:
        click.echo(f"wrote {out_path}; check it with: mlprov policy lint {out_path}")


def _init_from(
    from_paths: Sequence[Path],
    subject_path: Path | None,
    keys: Sequence[str],
    expires: datetime,
    out_path: Path,
    *,
    force: bool,
    as_json: bool,
) -> None:
    from mlprov.fsio import check_writable
    from mlprov.policy import collect_claims, evaluate, parse_layout
    from mlprov.policy.inferred import layout_from_claims
    from mlprov.signing.keys import load_public_key

    if not from_paths or subject_path is None:
        raise InputError("--from ATTESTATIONS and --subject MODEL go together")
    check_writable(out_path, force=force)
    paths = [Path(k.partition("=")[2] or k) for k in keys]
    public = [(p.name.removesuffix(".pub").removesuffix(".pem"), load_public_key(p)) for p in paths]
    claims = collect_claims(list(from_paths), exclude={out_path})
    [released] = _released([subject_path], trust_cache=False)
    text = layout_from_claims(
        claims.claims,
        subject=released.digest,
        subject_name=released.name,
        keys=public,
        expires=expires,
    )
    # Never write a layout that does not load, or that the attestations it came from fail.
    loaded = parse_layout(text.encode(), source=str(out_path), base_dir=out_path.parent)
    result = evaluate(loaded, claims, subjects=[released])
    if not result.passed:
        step, first = result.failures[0]
        raise InputError(
            f"the attestations fail the layout written from them ({step}: {first.rule}:"
            f" {first.reason}); fix them, or start from `mlprov policy init` without --from"
        )
    write_bytes_atomic(out_path, text.encode(), force=force)
    steps = [s.name for s in loaded.layout.steps]
    if as_json:
        echo_json({"out": str(out_path), "steps": steps, "skipped": len(claims.skipped)})
    else:
        for source, reason in [(s.source, s.reason) for s in claims.skipped]:
            click.echo(f"skipped  {source}: {reason}", err=True)
        click.echo(
            f"wrote {out_path} ({len(steps)} steps: {', '.join(steps)}); it passes the"
            f" attestations it was written from; review it, then: mlprov policy lint {out_path}"
        )


@policy.command(epilog=SIGN_EPILOG)
@click.argument("layout_path", metavar="LAYOUT", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--key", "key_uris", multiple=True, required=True, metavar="URI", help="Owner key.")
@click.option("--out", "out_path", required=True, type=click.Path(path_type=Path, dir_okay=False))
@click.option("--password-env", metavar="VAR", help="Environment variable with the passphrase.")
@force_option
@json_option
def sign(
    layout_path: Path,
    key_uris: tuple[str, ...],
    out_path: Path,
    password_env: str | None,
    force: bool,
    as_json: bool,
) -> None:
    """Sign LAYOUT (DSSE) with owner keys, after checking it loads.

    Functionaries given as key files (`publicKeyPath`) are embedded as `publicKey` in what
    is signed: a signature over a path would let whoever replaces the file choose the key.
    """
    from mlprov.policy import LAYOUT_PAYLOAD_TYPE
    from mlprov.policy.loader import MAX_LAYOUT_BYTES, embed_keys
    from mlprov.signing.dsse import sign_envelope

    data = read_input(layout_path, limit=MAX_LAYOUT_BYTES, what="layout")
    data = embed_keys(data, base_dir=layout_path.parent, source=str(layout_path))
    signers = [load_cli_signer(uri, password_env=password_env) for uri in key_uris]
    envelope = sign_envelope(data, signers, payload_type=LAYOUT_PAYLOAD_TYPE)
    write_bytes_atomic(out_path, envelope.to_json() + b"\n", force=force)
    if as_json:
        echo_json({"out": str(out_path), "keyids": [s.public_key.keyid for s in signers]})
    else:
        click.echo(f"wrote {out_path} signed by {len(signers)} key(s)")
