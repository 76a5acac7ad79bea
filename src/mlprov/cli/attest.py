"""`mlprov attest`: in-toto Statements for finished ML steps (train, dataset, eval, ...).

Each command only parses options and calls `mlprov.api`; the Statement is written
atomically, never over an existing file without --force: unsigned as `X.statement.json`,
or signed with `--key` as a DSSE envelope `X.intoto.json`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from mlprov.api import TrainingRun, evaluation_statement, write_statement
from mlprov.cli._common import (
    LOCATION,
    byte_progress,
    check_statement_name,
    display_name,
    echo_json,
    follow_symlinks_option,
    force_option,
    json_option,
    sign_options,
    signers_from,
    storage_option,
)
from mlprov.collect.config import parse_overrides
from mlprov.collect.hf import parse_hub_uri
from mlprov.errors import InputError
from mlprov.statement import Statement

F = TypeVar("F", bound=Callable[..., Any])

EPILOG_TRAIN = """\b
Examples:
  mlprov attest train --model out/model --dataset train=out/dataset \\
      --config train.yaml --param epochs=20 --metrics out/metrics.json \\
      --out out/train.statement.json
  mlprov attest train --model out/model --dataset train=out/dataset \\
      --key release.key --out out/train.intoto.json        # signed (DSSE)
  mlprov attest train --model out/model \\
      --dataset train=https://example.org/d.tar#sha256=<64 hex> --config c.json \\
      --out t.statement.json
"""
EPILOG_FINETUNE = """\b
Example:
  mlprov attest finetune --model out/ft --base-model out/model \\
      --dataset train=out/extra --config ft.yaml --out out/finetune.statement.json
"""
EPILOG_DATASET = """\b
Example:
  mlprov attest dataset --dataset train=out/dataset --input raw=out/raw.csv \\
      --config prep.yaml --license train=CC-BY-4.0 --out out/dataset.statement.json
"""
EPILOG_CONVERT = """\b
Example:
  mlprov attest convert --model out/model-int8 --base-model out/model \\
      --param dtype=int8 --out out/convert.statement.json
"""
EPILOG_EVAL = """\b
Examples:
  mlprov attest eval --model out/model --dataset test=out/test \\
      --metrics out/metrics.json --threshold 'accuracy>=0.9' \\
      --key release.key --out out/eval.intoto.json
  (exit 1 after writing the Statement when a threshold is not met)
"""


def _pairs(values: tuple[str, ...], what: str) -> list[tuple[str, str]]:
    out = []
    for value in values:
        if what in ("--dataset", "--input") and value.startswith("hf://"):
            # A bare hub reference is named by its repository id.
            out.append((parse_hub_uri(value).repo_id, value))
            continue
        name, sep, rest = value.partition("=")
        if not sep or not name or not rest:
            raise InputError(f"{what} {value!r} is not of the form NAME=VALUE")
        out.append((name, rest))
    return out


def _by_name(values: tuple[str, ...], what: str, known: set[str]) -> dict[str, str]:
    found = dict(_pairs(values, what))
    for name in found:
        if name not in known:
            raise InputError(f"{what} names {name!r}, which is not a --dataset")
    return found


def _common(func: F) -> F:
    """Options every provenance-writing attest command takes."""
    decorators: list[Callable[[Any], Any]] = [
        click.option(
            "--out",
            type=click.Path(path_type=Path, dir_okay=False),
            required=True,
            help="Where to write it: X.statement.json, or X.intoto.json when signed with --key.",
        ),
        click.option("--step", help="Step name recorded (default: the command's)."),
        click.option(
            "--config",
            "config_file",
            type=click.Path(path_type=Path),
            help="YAML/JSON/TOML config.",
        ),
        click.option(
            "--param",
            "params",
            multiple=True,
            metavar="KEY=VALUE",
            help="Parameter override (types kept).",
        ),
        click.option(
            "--seed", "seeds", multiple=True, metavar="NAME=INT", help="Random seed used."
        ),
        click.option("--entry-point", help="Script or module that ran the step."),
        click.option(
            "--byproduct",
            "byproducts",
            multiple=True,
            type=click.Path(path_type=Path),
            help="Log or checkpoint to record by digest (repeatable).",
        ),
        click.option("--builder-id", help="Builder URI (default: from CI variables, else local)."),
        click.option("--invocation-id", help="Invocation id (default: from CI, else a new UUID)."),
        click.option("--started-on", metavar="TIME", help="When the step started (RFC 3339)."),
        click.option("--finished-on", metavar="TIME", help="When the step finished (RFC 3339)."),
        click.option(
            "--source-dir",
            type=click.Path(path_type=Path),
            default=Path("."),
            show_default=True,
            help="Git working tree of the code that ran.",
        ),
        click.option("--no-git", is_flag=True, help="Do not record the git source."),
        click.option("--record-host", is_flag=True, help="Record the hostname."),
        click.option(
            "--no-packages",
            is_flag=True,
            help="Do not list installed Python distributions (pkg:pypi purls).",
        ),
        click.option(
            "--no-manifests",
            is_flag=True,
            help="Do not write dataset manifests beside the Statement.",
        ),
        click.option(
            "--file-subjects",
            is_flag=True,
            help="Also list every file of the output tree as a subject.",
        ),
        follow_symlinks_option,
        force_option,
        json_option,
        sign_options,
        storage_option,
    ]
    for decorator in reversed(decorators):
        func = decorator(func)
    return func


def _show_progress() -> None:
    """Show a progress bar on a terminal while models and datasets are hashed (a cold
    multi-gigabyte model takes seconds); reset when the command's context closes."""
    from mlprov.collect.artifacts import DIGEST_PROGRESS

    token = DIGEST_PROGRESS.set(byte_progress)
    click.get_current_context().call_on_close(lambda: DIGEST_PROGRESS.reset(token))


def _new_run(build_type: str, opts: dict[str, Any]) -> TrainingRun:
    check_statement_name(opts["out"], signed=bool(opts["sign_keys"]))
    _show_progress()
    run = TrainingRun(
        step=opts["step"],
        out=opts["out"],
        build_type=build_type,
        builder_id=opts["builder_id"],
        invocation_id=opts["invocation_id"],
        force=opts["force"],
        record_host=opts["record_host"],
        record_packages=not opts["no_packages"],
        source_dir=None if opts["no_git"] else opts["source_dir"],
        write_manifests=not opts["no_manifests"],
        file_subjects=opts["file_subjects"],
        observed=False,
        started_on=opts["started_on"],
        finished_on=opts["finished_on"],
        signers=signers_from(opts["sign_keys"], opts["password_env"]),
        follow_symlinks=opts["follow_symlinks"],
    )
    # Refuse an existing output before hashing gigabytes.
    from mlprov.fsio import check_writable

    check_writable(opts["out"], force=opts["force"])
    if opts["config_file"] is not None:
        run.config(opts["config_file"])
    run.params(parse_overrides(opts["params"]))
    for name, value in _pairs(opts["seeds"], "--seed"):
        try:
            run.seed(name, int(value))
        except ValueError:
            raise InputError(f"--seed {name}={value}: not an integer") from None
    if opts["entry_point"]:
        run.entry_point(opts["entry_point"])
    for path in opts["byproducts"]:
        run.byproduct(path)
    return run


def _datasets(
    run: TrainingRun,
    datasets: tuple[str, ...],
    splits: tuple[str, ...],
    licenses: tuple[str, ...],
    *,
    outputs: bool = False,
) -> None:
    pairs = _pairs(datasets, "--dataset")
    names = {name for name, _ in pairs}
    split_of = _by_name(splits, "--split", names)
    license_of = _by_name(licenses, "--license", names)
    for name, location in pairs:
        if outputs:
            run.output_dataset(
                name, location, split=split_of.get(name), license=license_of.get(name)
            )
        else:
            run.dataset(name, location, split=split_of.get(name), license=license_of.get(name))


def _report(statement: Statement, out: Path, as_json: bool) -> None:
    if as_json:
        echo_json({"out": str(out), "statement": statement.to_dict()})
        return
    click.echo(f"wrote {out} ({statement.predicateType})")
    for subject in statement.subject:
        for algorithm, value in sorted((subject.digest or {}).items()):
            click.echo(f"  subject {display_name(subject.name or '')}  {algorithm}:{value}")


dataset_options = [
    click.option(
        "--split", "splits", multiple=True, metavar="NAME=SPLIT", help="Split of a dataset."
    ),
    click.option(
        "--license", "licenses", multiple=True, metavar="NAME=SPDX", help="License of a dataset."
    ),
]


def _with(options: list[Callable[[F], F]]) -> Callable[[F], F]:
    def apply(func: F) -> F:
        for option in reversed(options):
            func = option(func)
        return func

    return apply


@click.group(epilog=EPILOG_TRAIN)
def attest() -> None:
    """Write an in-toto Statement (SLSA Provenance v1 or test-result) for a finished ML step."""


def _model_step(
    build_type: str, name: str, epilog: str, summary: str, *, base_required: bool
) -> click.Command:
    @click.command(name=name, epilog=epilog, help=summary)
    @click.option(
        "--model",
        type=LOCATION,
        metavar="PATH|URL|hf://ORG/NAME@REV",
        required=True,
        help="Model produced (subject).",
    )
    @click.option(
        "--dataset",
        "datasets",
        multiple=True,
        metavar="NAME=PATH|NAME=URI#sha256=HEX|hf://datasets/ORG/NAME@REV",
        help="Dataset read (repeatable).",
    )
    @_with(dataset_options)
    @click.option(
        "--base-model",
        required=base_required,
        metavar="PATH|hf://ORG/NAME@REV|URI#sha256=HEX",
        help="Model the step started from (hf:// is read from the local hub cache).",
    )
    @click.option("--metrics", type=click.Path(path_type=Path), help="Metrics JSON (a byproduct).")
    @_common
    def command(**opts: Any) -> None:
        run = _new_run(build_type, opts)
        _datasets(run, opts["datasets"], opts["splits"], opts["licenses"])
        if opts["base_model"]:
            run.base_model(opts["base_model"])
        if opts["metrics"]:
            run.metrics(opts["metrics"])
        run.model(opts["model"])
        _report(run.finish(), opts["out"], opts["as_json"])

    return command


attest.add_command(
    _model_step(
        "training",
        "train",
        EPILOG_TRAIN,
        "Record a training run: the model, its data, config and code.",
        base_required=False,
    )
)
attest.add_command(
    _model_step(
        "fine-tuning",
        "finetune",
        EPILOG_FINETUNE,
        "Record a fine-tuning run (needs --base-model).",
        base_required=True,
    )
)
attest.add_command(
    _model_step(
        "conversion",
        "convert",
        EPILOG_CONVERT,
        "Record a conversion or quantization of --base-model into --model.",
        base_required=True,
    )
)


@attest.command(name="dataset", epilog=EPILOG_DATASET)
@click.option(
    "--dataset",
    "datasets",
    multiple=True,
    required=True,
    metavar="NAME=PATH",
    help="Dataset produced (subject; repeatable).",
)
@_with(dataset_options)
@click.option(
    "--input",
    "inputs",
    multiple=True,
    metavar="NAME=PATH|URI#sha256=HEX",
    help="Source data read (repeatable).",
)
@_common
def attest_dataset(**opts: Any) -> None:
    """Record a dataset preparation step: the datasets made and the sources they came from."""
    run = _new_run("dataset-preparation", opts)
    for name, location in _pairs(opts["inputs"], "--input"):
        run.dataset(name, location)
    _datasets(run, opts["datasets"], opts["splits"], opts["licenses"], outputs=True)
    _report(run.finish(), opts["out"], opts["as_json"])


@attest.command(name="eval", epilog=EPILOG_EVAL)
@click.option(
    "--model",
    type=LOCATION,
    metavar="PATH|URL|hf://ORG/NAME@REV",
    required=True,
    help="Model evaluated (subject).",
)
@click.option(
    "--dataset",
    "datasets",
    multiple=True,
    metavar="NAME=PATH|NAME=URI#sha256=HEX|hf://datasets/ORG/NAME@REV",
    help="Evaluation dataset (repeatable).",
)
@click.option(
    "--metrics", type=click.Path(path_type=Path), required=True, help="Metrics JSON object."
)
@click.option(
    "--threshold",
    "thresholds",
    multiple=True,
    metavar="METRIC>=VALUE",
    help="Check on a metric (>=, <=, >, <, ==; repeatable).",
)
@click.option(
    "--config", "config_file", type=click.Path(path_type=Path), help="Evaluation config file."
)
@click.option("--step", default="eval", show_default=True, help="Step name recorded.")
@click.option("--url", help="Where the evaluation's full results can be seen.")
@click.option(
    "--out",
    type=click.Path(path_type=Path, dir_okay=False),
    required=True,
    help="Where to write it: X.statement.json, or X.intoto.json when signed with --key.",
)
@follow_symlinks_option
@force_option
@json_option
@sign_options
@storage_option
@click.pass_context
def attest_eval(ctx: click.Context, /, **opts: Any) -> None:
    """Record an evaluation as an in-toto test-result Statement about the model."""
    from mlprov.fsio import check_writable

    check_statement_name(opts["out"], signed=bool(opts["sign_keys"]))
    _show_progress()
    check_writable(opts["out"], force=opts["force"])
    signers = signers_from(opts["sign_keys"], opts["password_env"])
    statement = evaluation_statement(
        model=opts["model"],
        metrics=opts["metrics"],
        datasets=_pairs(opts["datasets"], "--dataset"),
        thresholds=opts["thresholds"],
        config=opts["config_file"],
        step=opts["step"],
        url=opts["url"],
        follow_symlinks=opts["follow_symlinks"],
    )
    write_statement(statement, opts["out"], force=opts["force"], signers=signers)
    _report(statement, opts["out"], opts["as_json"])
    predicate = statement.predicate or {}
    if predicate.get("result") == "FAILED":
        model = statement.subject[0].name
        for check in predicate.get("mlprov_thresholds", []):
            if not check["passed"]:
                actual = check.get("actual")
                got = "missing" if actual is None else f"{actual:g}"
                click.echo(f"FAILED: {check['name']} on {model} (actual: {got})", err=True)
        ctx.exit(1)
