"""The public Python API: record an ML step as an in-toto Statement from inside the script.

    with mlprov.TrainingRun(step="train", out="train.statement.json") as run:
        run.dataset("train", "data/")
        run.config({"lr": 0.1, "epochs": 20})
        for epoch in range(20):
            ...
            run.log(step=epoch, loss=loss)
            run.checkpoint(f"ckpt/{epoch}.pt", step=epoch)
        run.model("model/")

The Statement (SLSA Provenance v1) is written when the block ends; if the block raises,
it is still written, marked failed, and the exception propagates. An existing `out` is
refused when the run is created (before any training), unless `force=True`. While the
block runs, the seeds the script sets (`random.seed`, NumPy, PyTorch, JAX) are recorded,
and so are the entry point and argv. The CLI's
`mlprov attest` and `mlprov run` use this same class, so both record the same facts.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any

from mlprov.collect.artifacts import describe_path, is_remote_url, is_uri, parse_digest
from mlprov.collect.builder import detect_builder, parse_timestamp, utc_now
from mlprov.collect.config import json_ready, load_config
from mlprov.collect.datasets import describe_dataset
from mlprov.collect.environment import Environment, collect_environment, package_descriptors
from mlprov.collect.git import GitSource, collect_git
from mlprov.collect.hf import is_hub_uri
from mlprov.collect.seeds import unwatch, watch
from mlprov.digest import DigestCache, TreeManifest
from mlprov.digest.manifest import MANIFEST_MEDIA_TYPE
from mlprov.errors import InputError
from mlprov.fsio import check_writable, read_input, write_bytes_atomic
from mlprov.predicates import SLSA_PROVENANCE_V1, TEST_RESULT_V01
from mlprov.predicates.slsa_provenance import (
    BUILD_TYPES,
    BuildDefinition,
    Builder,
    BuildMetadata,
    RunDetails,
    RunOutcome,
    SLSAProvenance,
    UndigestedProduct,
    build_type_uri,
)
from mlprov.predicates.test_result import TestResult, Threshold
from mlprov.statement import (
    DIGEST_OF,
    FILE,
    ResourceDescriptor,
    Statement,
    check_statement_name,
)

#: Largest metrics file read.
MAX_METRICS_BYTES = 16 << 20
#: Media type of the metrics log `run.log` writes (one JSON object per line).
METRICS_LOG_MEDIA_TYPE = "application/jsonl"
#: Command-line flags whose value is not recorded in argv.
SECRET_FLAG_WORDS = ("token", "password", "passwd", "passphrase", "secret", "api-key", "apikey")

if TYPE_CHECKING:  # securesystemslib is imported only when something is signed
    from securesystemslib.signer import Signer

if TYPE_CHECKING:  # securesystemslib is imported only when something is signed
    from securesystemslib.signer import Signer

__all__ = ["TrainingRun", "evaluation_statement", "write_statement"]


def write_statement(
    statement: Statement,
    out: str | Path,
    *,
    force: bool = False,
    signers: Sequence[Signer] = (),
) -> bytes:
    """Check a Statement's structure and write it atomically; returns the bytes written.

    Unsigned: the Statement's canonical bytes. With `signers`: a DSSE envelope whose
    payload is exactly those bytes, signed by every signer.
    """
    statement.check_structure()
    data = statement.to_bytes()
    if signers:
        from mlprov.signing.dsse import sign_envelope

        envelope = sign_envelope(data, signers)
        data = envelope.to_json() + b"\n"  # one line: an export is then JSON Lines
    write_bytes_atomic(Path(out), data, force=force)
    return data


def _stem(out: Path) -> str:
    name = out.name
    for suffix in (".intoto.json", ".statement.json", ".json"):
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


class TrainingRun:
    """Collects the facts of one ML step and turns them into a SLSA Provenance Statement.

    `observed=True` (the default) means the step runs now, inside this object's
    lifetime: start/finish times and the outcome are recorded. `observed=False` records
    a step that already ran (`mlprov attest`): no time or outcome is invented, only
    those given as `started_on` / `finished_on`.
    """

    def __init__(
        self,
        *,
        step: str | None = None,
        out: str | Path | None = None,
        build_type: str = "training",
        builder_id: str | None = None,
        invocation_id: str | None = None,
        force: bool = False,
        record_host: bool = False,
        record_packages: bool = True,
        source_dir: str | Path | None = ".",
        write_manifests: bool = True,
        file_subjects: bool = False,
        observed: bool = True,
        started_on: str | None = None,
        finished_on: str | None = None,
        environ: Mapping[str, str] | None = None,
        signers: Sequence[Signer | str | Path] = (),
        password_env: str | None = None,
        follow_symlinks: bool = False,
        capture_seeds: bool = True,
    ) -> None:
        if build_type not in BUILD_TYPES:
            raise InputError(f"unknown build type {build_type!r}; known: {', '.join(BUILD_TYPES)}")
        self.build_type = build_type
        self.step = step or BUILD_TYPES[build_type]
        if not self.step.strip():
            raise InputError("the step name must not be empty")
        self.out = Path(out) if out is not None else None
        self.force = force
        self.signers = load_signers(signers, password_env=password_env)
        if self.out is not None:  # before the training runs, not after it
            check_writable(self.out, force=force)
            check_statement_name(self.out, signed=bool(self.signers), how='signers=["KEY"]')
        self.capture_seeds = capture_seeds
        self.record_host = record_host
        self.record_packages = record_packages
        self.source_dir = Path(source_dir) if source_dir is not None else None
        self.write_manifests = write_manifests
        self.file_subjects = file_subjects
        self.follow_symlinks = follow_symlinks
        self.observed = observed
        self.identity = detect_builder(
            os.environ if environ is None else environ,
            builder_id=builder_id,
            invocation_id=invocation_id,
        )
        self.started_on = (
            parse_timestamp(started_on, what="started-on")
            if started_on
            else (utc_now() if observed else None)
        )
        self.finished_on = parse_timestamp(finished_on, what="finished-on") if finished_on else None
        self.cache = DigestCache()
        self._external: dict[str, Any] = {}
        self._parameters: dict[str, Any] = {}
        self._seeds: dict[str, int] = {}
        self._inputs: list[ResourceDescriptor] = []
        self._subjects: list[ResourceDescriptor] = []
        self._byproducts: list[ResourceDescriptor] = []
        self._manifests: list[tuple[str, TreeManifest]] = []
        self._finished: Statement | None = None
        self._outputs: list[Path] = []  # local files the run wrote: not "dirty" in git
        self._log: IO[bytes] | None = None
        self._log_hash = hashlib.sha256()
        self._log_entries = 0
        self._last_metrics: dict[str, Any] = {}
        self._last_step: Any = None
        self._watching = False

    # -- inputs -------------------------------------------------------------------------

    def dataset(
        self,
        name: str,
        location: str | Path,
        *,
        digest: str | None = None,
        split: str | None = None,
        license: str | None = None,
    ) -> ResourceDescriptor:
        """Record a dataset read by the step: a path, a hub snapshot, or `URI#sha256=HEX`."""
        self._check_unique(self._inputs, name, "dataset")
        record = describe_dataset(
            name,
            location,
            digest=digest,
            split=split,
            license=license,
            cache=self.cache,
            follow_symlinks=self.follow_symlinks,
        )
        if record.manifest is not None:
            self._manifests.append((name, record.manifest))
        self._inputs.append(record.descriptor)
        return record.descriptor

    def base_model(
        self, location: str | Path, *, digest: str | None = None, name: str | None = None
    ) -> ResourceDescriptor:
        """Record the model this step started from (fine-tuning, conversion): a path, a hub
        snapshot, `hf://org/name@REV` (resolved offline from the hub cache) or
        `URI#sha256=HEX`; a local model's files are described (modelFacts)."""
        return self.material(location, digest=digest, name=name, role="base-model")

    def material(
        self,
        location: str | Path,
        *,
        digest: str | None = None,
        name: str | None = None,
        role: str = "material",
    ) -> ResourceDescriptor:
        """Record any other input: a local path or object-store URL (digested),
        `hf://org/name@REV` (resolved from the hub cache) or `URI#sha256=HEX`."""
        hashed_remotely = is_remote_url(location) and digest is None and "#" not in str(location)
        if (
            isinstance(location, str)
            and is_uri(location)
            and not hashed_remotely
            and not is_hub_uri(location)
        ):
            record = describe_dataset(
                name or location.rsplit("/", 1)[-1].split("#")[0] or "input",
                location,
                digest=digest,
                role=role,
            )
            descriptor = record.descriptor
        else:
            described = describe_path(
                location,
                name=name,
                cache=self.cache,
                annotations={"role": role},
                follow_symlinks=self.follow_symlinks,
                model_facts=role == "base-model",
            )
            descriptor = described.descriptor
            if digest is not None:
                want = parse_digest(digest, what=str(location))
                if any((descriptor.digest or {}).get(k) != v for k, v in want.items()):
                    raise InputError(f"{location} does not have digest {digest}")
        for known in self._inputs:
            if known.name == descriptor.name and known.digest == descriptor.digest:
                return known  # the same file named twice (e.g. --config and --materials)
        self._check_unique(self._inputs, descriptor.name, role)
        self._inputs.append(descriptor)
        return descriptor

    def config(self, config: Mapping[str, Any] | str | Path) -> None:
        """Record the configuration: a mapping, or a YAML/JSON/TOML file (plus its digest)."""
        if isinstance(config, Mapping):
            values = json_ready(dict(config))
        else:
            record = load_config(Path(config))
            values = record.values
            self._external["configFile"] = record.descriptor.name
            self._check_unique(self._inputs, record.descriptor.name, "config")
            self._inputs.append(record.descriptor)
        self._external["config"] = values

    def param(self, key: str, value: Any) -> None:
        """Record one parameter override (`--param key=value`), its type kept."""
        if not key:
            raise InputError("a parameter needs a name")
        self._parameters[key] = json_ready(value, where=key)

    def params(self, values: Mapping[str, Any]) -> None:
        """Record several parameter overrides."""
        for key, value in values.items():
            self.param(key, value)

    def seed(self, name: str, value: int) -> None:
        """Record a random seed the platform or script chose (internalParameters.seeds).

        Inside `with TrainingRun(...)`, seeds set through `random.seed`,
        `numpy.random.seed`/`default_rng`, `torch.manual_seed` and `jax.random.PRNGKey`
        are recorded without this call (for modules imported before the run starts)."""
        if isinstance(value, bool) or not isinstance(value, int):
            raise InputError(f"seed {name}: {value!r} is not an integer")
        self._seeds[name] = value

    def _observed_seed(self, name: str, value: int) -> None:
        self._seeds[name] = value

    def entry_point(self, entry_point: str) -> None:
        """Record the script or module that ran the step."""
        self._external["entryPoint"] = entry_point

    def command(self, argv: Sequence[str]) -> None:
        """Record the command line that ran the step (`mlprov run`)."""
        self._external["command"] = [str(a) for a in argv]

    # -- outputs ------------------------------------------------------------------------

    def model(self, path: str | Path, *, name: str | None = None) -> ResourceDescriptor:
        """Record the model the step produced: a subject, named by its directory (a hub
        snapshot or `hf://` reference by its repository id)."""
        return self.product(path, name=name)

    def product(
        self,
        path: str | Path,
        *,
        name: str | None = None,
        annotations: dict[str, Any] | None = None,
    ) -> ResourceDescriptor:
        """Record an output file or tree (or object-store URL) as a subject (tree digest for a
        directory), with what its model files' headers say (annotations.modelFacts)."""
        described = describe_path(
            path,
            name=name,
            cache=self.cache,
            follow_symlinks=self.follow_symlinks,
            model_facts=True,
        )
        subject = ResourceDescriptor(
            name=described.descriptor.name,
            uri=described.descriptor.uri,
            digest=described.descriptor.digest,
            annotations=_subject_notes(described.descriptor, annotations),
        )
        self._check_unique(self._subjects, subject.name, "output")
        self._subjects.append(subject)
        self._output(path)
        if self.file_subjects and described.is_dir:
            for entry in described.manifest.files:
                self._subjects.append(
                    ResourceDescriptor(
                        name=f"{subject.name}/{entry.path}",
                        digest={described.manifest.algorithm: entry.digest},
                        annotations={DIGEST_OF: FILE},
                    )
                )
        return subject

    def output_dataset(
        self,
        name: str,
        path: str | Path,
        *,
        split: str | None = None,
        license: str | None = None,
    ) -> ResourceDescriptor:
        """Record a dataset the step produced (dataset preparation) as a subject."""
        record = describe_dataset(
            name,
            path,
            split=split,
            license=license,
            cache=self.cache,
            follow_symlinks=self.follow_symlinks,
        )
        notes = {k: v for k, v in (record.descriptor.annotations or {}).items() if k != "role"}
        subject = ResourceDescriptor(
            name=name, digest=record.descriptor.digest, annotations=notes or None
        )
        self._check_unique(self._subjects, name, "output dataset")
        self._subjects.append(subject)
        self._output(path)
        if record.manifest is not None:
            self._manifests.append((name, record.manifest))
        return subject

    def metrics(self, values: Mapping[str, Any] | str | Path) -> None:
        """Record metrics (a mapping or a JSON file of them) as a byproduct."""
        if isinstance(values, Mapping):
            data = json.dumps(json_ready(dict(values)), sort_keys=True).encode()
            name, parsed = "metrics.json", json_ready(dict(values))
        else:
            path = Path(values)
            data = read_input(path, limit=MAX_METRICS_BYTES, what="metrics file")
            parsed, name = parse_metrics(data, source=str(path)), path.name
        self._byproducts = [b for b in self._byproducts if b.name != name]
        self._byproducts.append(
            ResourceDescriptor(
                name=name,
                digest={"sha256": hashlib.sha256(data).hexdigest()},
                mediaType="application/json",
                annotations={"role": "metrics", "metrics": parsed},
            )
        )

    def byproduct(
        self, path: str | Path, *, name: str | None = None, role: str = "log"
    ) -> ResourceDescriptor:
        """Record a log, checkpoint or other side output by digest."""
        described = describe_path(
            Path(path),
            name=name,
            cache=self.cache,
            annotations={"role": role},
            follow_symlinks=self.follow_symlinks,
        )
        self._check_unique(self._byproducts, described.descriptor.name, role)
        self._byproducts.append(described.descriptor)
        self._output(path)
        return described.descriptor

    def checkpoint(
        self, path: str | Path, *, step: int | None = None, name: str | None = None
    ) -> ResourceDescriptor:
        """Record a checkpoint the step saved (a file or directory) by digest, with the
        training step it was saved at: a byproduct with role `checkpoint`. The same path
        saved again at a later step is recorded again, with that step's digest."""
        if step is not None and (isinstance(step, bool) or not isinstance(step, int)):
            raise InputError(f"checkpoint step {step!r} is not an integer")
        notes: dict[str, Any] = {"role": "checkpoint"}
        if step is not None:
            notes["step"] = step
        described = describe_path(
            Path(path),
            name=name,
            cache=self.cache,
            annotations=notes,
            follow_symlinks=self.follow_symlinks,
        )
        descriptor = described.descriptor
        for known in self._byproducts:
            same = (known.annotations or {}).get("step") == step
            if known.name == descriptor.name and (same or step is None):
                raise InputError(f"checkpoint {descriptor.name!r} is recorded twice at step {step}")
        self._byproducts.append(descriptor)
        self._output(path)
        return descriptor

    def log(self, step: int | None = None, **metrics: Any) -> None:
        """Record metrics at a training step (`run.log(step=10, loss=0.3, acc=0.8)`).

        Each call is one line of a JSON-lines log written beside `out`
        (`NAME.metrics.jsonl`), referenced by digest in the byproducts; the last value of
        each metric goes into the predicate's metrics (unless `run.metrics` gives them).
        """
        if not metrics:
            raise InputError("run.log needs at least one metric (run.log(step=1, loss=0.5))")
        if step is not None and (isinstance(step, bool) or not isinstance(step, int)):
            raise InputError(f"log step {step!r} is not an integer")
        if self.out is None:
            raise InputError("run.log keeps its log beside the Statement: give out=")
        values = json_ready(dict(metrics))
        entry: dict[str, Any] = {"step": step, "time": utc_now(), **values}
        if "step" in values or "time" in values:
            raise InputError("a metric may not be called 'step' or 'time'")
        line = json.dumps(entry, sort_keys=True).encode() + b"\n"
        if self._log is None:
            target = self.metrics_log_path
            check_writable(target, force=self.force)
            self._log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - kept open across calls
                mode="wb", dir=target.parent, prefix=f".{target.name}.", suffix=".tmp", delete=False
            )
        self._log.write(line)
        self._log.flush()
        self._log_hash.update(line)
        self._log_entries += 1
        self._last_metrics.update(values)
        self._last_step = step

    @property
    def metrics_log_path(self) -> Path:
        """Where `run.log` keeps its metrics log: `NAME.metrics.jsonl` beside `out`."""
        if self.out is None:
            raise InputError("run.log keeps its log beside the Statement: give out=")
        return self.out.parent / f"{_stem(self.out)}.metrics.jsonl"

    def _output(self, path: str | Path) -> None:
        if isinstance(path, Path) or not is_uri(str(path)):
            self._outputs.append(Path(path))

    # -- the statement ------------------------------------------------------------------

    def _check_unique(self, items: list[ResourceDescriptor], name: str | None, what: str) -> None:
        if name is not None and any(item.name == name for item in items):
            raise InputError(f"{what} {name!r} is recorded twice")

    def _manifest_path(self, name: str) -> Path:
        assert self.out is not None
        return self.out.parent / f"{_stem(self.out)}.{name.replace('/', '_')}.manifest.json"

    def _source(self) -> GitSource:
        if self.source_dir is None:
            return GitSource(absent="not recorded (no source directory given)")
        outputs = list(self._outputs)
        if self.out is not None:
            outputs.append(self.out)
            if self._log is not None:  # its name, and the temp file it is written to
                outputs += [self.metrics_log_path, Path(self._log.name)]
            outputs += [self._manifest_path(name) for name, _ in self._manifests]
        return collect_git(self.source_dir, outputs=outputs)

    def statement(
        self,
        *,
        exit_code: int | None = None,
        error: str | None = None,
        undigested: Sequence[UndigestedProduct] = (),
    ) -> Statement:
        """Build the Statement from what was recorded (without writing anything).

        `undigested` are declared products that could not be digested: the run is failed.
        """
        subjects = list(self._subjects)
        if not subjects:
            if error is None and (exit_code in (None, 0)):
                raise InputError("nothing was produced: record a model or output first")
            subjects = [self._invocation_subject()]
        environment: Environment = collect_environment(
            record_host=self.record_host, record_packages=self.record_packages
        )
        source = self._source()
        external: dict[str, Any] = {"step": self.step, **self._external}
        if self._parameters:
            external["parameters"] = dict(self._parameters)
        if source.absent:
            external["source"] = {"absent": source.absent}
        else:
            reference = {"repository": source.remote}
            if source.branch:
                reference["ref"] = f"refs/heads/{source.branch}"
            external["source"] = {k: v for k, v in reference.items() if v}
        internal = environment.internal_parameters()
        if self._seeds:
            internal["seeds"] = dict(self._seeds)
        dependencies = list(self._inputs)
        commit = source.descriptor()
        if commit is not None:
            dependencies.append(commit)
        dependencies.extend(package_descriptors(environment.packages))
        byproducts = list(self._byproducts) + self._log_descriptors()
        byproducts += self._manifest_descriptors()
        outcome = None
        if self.observed or exit_code is not None or error is not None:
            failed = error is not None or (exit_code not in (None, 0)) or bool(undigested)
            outcome = RunOutcome(
                outcome="failed" if failed else "succeeded",
                exitCode=exit_code,
                error=error,
                undigested=list(undigested) or None,
            )
        finished = self.finished_on or (utc_now() if self.observed else None)
        metadata = BuildMetadata.model_validate(
            {
                "invocationId": self.identity.invocation_id,
                "startedOn": self.started_on,
                "finishedOn": finished,
                **({"mlprov_outcome": outcome.model_dump(exclude_none=True)} if outcome else {}),
            }
        )
        from mlprov import __version__

        predicate = SLSAProvenance(
            buildDefinition=BuildDefinition(
                buildType=build_type_uri(self.build_type),
                externalParameters=external,
                internalParameters=internal,
                resolvedDependencies=dependencies or None,
            ),
            runDetails=RunDetails(
                builder=Builder(id=self.identity.builder_id, version={"mlprov": __version__}),
                metadata=metadata,
                byproducts=byproducts or None,
            ),
        )
        statement = Statement(
            subject=subjects, predicateType=SLSA_PROVENANCE_V1, predicate=predicate.to_dict()
        )
        statement.check_structure()
        return statement

    def _invocation_subject(self) -> ResourceDescriptor:
        """The subject of a failed run that produced nothing: the invocation itself."""
        invocation = self.identity.invocation_id
        return ResourceDescriptor(
            name=f"invocation/{self.step}",
            digest={"sha256": hashlib.sha256(invocation.encode()).hexdigest()},
            annotations={"invocationId": invocation, "note": "the failed run produced no output"},
        )

    def _log_descriptors(self) -> list[ResourceDescriptor]:
        """The metrics log, and the last logged values unless `run.metrics` gave metrics."""
        if self._log is None:
            return []
        found = [
            ResourceDescriptor(
                name=self.metrics_log_path.name,
                digest={"sha256": self._log_hash.hexdigest()},
                mediaType=METRICS_LOG_MEDIA_TYPE,
                annotations={
                    "role": "metrics-log",
                    "entries": self._log_entries,
                    "lastStep": self._last_step,
                },
            )
        ]
        if not any((b.annotations or {}).get("role") == "metrics" for b in self._byproducts):
            data = json.dumps(self._last_metrics, sort_keys=True).encode()
            found.append(
                ResourceDescriptor(
                    name="metrics.json",
                    digest={"sha256": hashlib.sha256(data).hexdigest()},
                    mediaType="application/json",
                    annotations={"role": "metrics", "metrics": dict(self._last_metrics)},
                )
            )
        return found

    def _manifest_descriptors(self) -> list[ResourceDescriptor]:
        if not (self.write_manifests and self.out is not None):
            return []
        out = []
        for name, manifest in self._manifests:
            path = self._manifest_path(name)
            out.append(
                ResourceDescriptor(
                    name=path.name,
                    digest={"sha256": hashlib.sha256(manifest.to_json()).hexdigest()},
                    mediaType=MANIFEST_MEDIA_TYPE,
                    annotations={
                        "role": "manifest",
                        "describes": name,
                        "treeDigest": {"sha256": manifest.digest},
                    },
                )
            )
        return out

    def finish(
        self,
        *,
        exit_code: int | None = None,
        error: str | None = None,
        undigested: Sequence[UndigestedProduct] = (),
    ) -> Statement:
        """Build the Statement and write it (and dataset manifests) to `out`, once."""
        if self._finished is not None:
            return self._finished
        self._stop_watching()
        try:
            statement = self.statement(exit_code=exit_code, error=error, undigested=undigested)
        except BaseException:
            self._discard_log()
            raise
        if self.out is not None:
            try:
                self._write(statement, self.out)
            finally:
                self._discard_log()
        self._finished = statement
        self.cache.close()
        return statement

    def _write(self, statement: Statement, out: Path) -> None:
        targets = [out]
        if self._log is not None:
            targets.append(self.metrics_log_path)
        if self.write_manifests:
            targets += [self._manifest_path(name) for name, _ in self._manifests]
        for target in targets:
            check_writable(target, force=self.force)
        if self.write_manifests:
            for name, manifest in self._manifests:
                write_bytes_atomic(self._manifest_path(name), manifest.to_json(), force=self.force)
        self._keep_log()
        write_statement(statement, out, force=self.force, signers=self.signers)

    def _keep_log(self) -> None:
        """Move the metrics log from its temp file to its name, complete and synced."""
        if self._log is None:
            return
        self._log.flush()
        os.fsync(self._log.fileno())
        self._log.close()
        check_writable(self.metrics_log_path, force=self.force)
        os.replace(self._log.name, self.metrics_log_path)

    def _discard_log(self) -> None:
        """Close the metrics log and remove its temp file if it was not kept."""
        if self._log is not None:
            self._log.close()
            Path(self._log.name).unlink(missing_ok=True)

    def _stop_watching(self) -> None:
        if self._watching:
            unwatch(self._observed_seed)
            self._watching = False

    def __enter__(self) -> TrainingRun:
        if self.observed and self.started_on is None:
            self.started_on = utc_now()
        if self.observed:
            self._record_invocation()
            if self.capture_seeds and not self._watching:
                watch(self._observed_seed)
                self._watching = True
        return self

    def _record_invocation(self) -> None:
        """The script that runs the block, relative to the source directory, and its argv
        (values of flags that look like secrets left out), unless already recorded."""
        argv = list(sys.argv)
        script = argv[0] if argv else ""
        if not script or script == "-c" or "entryPoint" in self._external:
            return
        entry = Path(script)
        base = (self.source_dir or Path(".")).resolve()
        try:
            shown = entry.resolve().relative_to(base).as_posix()
        except (ValueError, OSError):
            shown = entry.name
        self._external["entryPoint"] = shown
        self._external.setdefault("command", [shown, *redact_argv(argv[1:])])

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            self.finish(exit_code=0)
            return
        reason = f"{type(exc).__name__}: {exc}".splitlines()[0][:500]
        code = exc.code if isinstance(exc, SystemExit) and isinstance(exc.code, int) else 1
        self.finish(exit_code=code, error=reason)


def load_signers(
    signers: Sequence[Signer | str | Path], *, password_env: str | None = None
) -> list[Signer]:
    """Signers from Signer objects, private key paths or signer URIs (`awskms:…`)."""
    found: list[Signer] = []
    for item in signers:
        if not isinstance(item, (str, Path)):
            found.append(item)
            continue
        from mlprov.signing.keys import load_signer

        found.append(load_signer(str(item), password_env=password_env))
    return found


def redact_argv(argv: Sequence[str]) -> list[str]:
    """argv with the values of secret-looking flags (`--token X`, `--password=X`) hidden."""
    out: list[str] = []
    hide_next = False
    for arg in argv:
        if hide_next:
            out.append("<redacted>")
            hide_next = False
            continue
        flag, eq, _ = arg.partition("=")
        secret = flag.startswith("-") and any(w in flag.lower() for w in SECRET_FLAG_WORDS)
        if secret and eq:
            out.append(f"{flag}=<redacted>")
        else:
            out.append(arg)
            hide_next = secret
    return out


def _subject_notes(
    described: ResourceDescriptor, extra: dict[str, Any] | None
) -> dict[str, Any] | None:
    """A subject's annotations: the model facts and hub origin found, and any given."""
    found = described.annotations or {}
    kept = ("digestOf", "modelFacts", "huggingFace")  # digestOf: file or tree, when recorded
    notes: dict[str, Any] = {k: found[k] for k in kept if k in found}
    notes.update(extra or {})
    return notes or None


def read_metrics(path: Path) -> dict[str, Any]:
    """A metrics JSON file: an object of names to values; InputError otherwise."""
    data = read_input(path, limit=MAX_METRICS_BYTES, what="metrics file")
    return parse_metrics(data, source=str(path))


def parse_metrics(data: bytes, *, source: str) -> dict[str, Any]:
    """Metrics JSON bytes: an object of names to values; InputError otherwise."""
    try:
        raw = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise InputError(f"{source}: not a JSON metrics file ({exc})") from None
    if not isinstance(raw, dict):
        raise InputError(f"{source}: metrics must be a JSON object of name: value")
    values: dict[str, Any] = json_ready(raw)
    return values


def evaluation_statement(
    *,
    model: str | Path,
    metrics: Mapping[str, Any] | str | Path,
    datasets: Sequence[tuple[str, str | Path]] = (),
    thresholds: Sequence[str | Threshold] = (),
    config: str | Path | None = None,
    step: str = "eval",
    url: str | None = None,
    model_name: str | None = None,
    follow_symlinks: bool = False,
) -> Statement:
    """A test-result v0.1 Statement: the model (a path or `hf://` reference) as subject,
    datasets as configuration, metrics."""
    cache = DigestCache()
    try:
        described = describe_path(
            model,
            name=model_name,
            cache=cache,
            follow_symlinks=follow_symlinks,
            model_facts=True,
        )
        subject = ResourceDescriptor(
            name=described.descriptor.name,
            uri=described.descriptor.uri,
            digest=described.descriptor.digest,
            annotations=_subject_notes(described.descriptor, None),
        )
        configuration: list[ResourceDescriptor] = []
        for name, location in datasets:
            if any(c.name == name for c in configuration):
                raise InputError(f"dataset {name!r} is recorded twice")
            configuration.append(
                describe_dataset(
                    name, location, cache=cache, follow_symlinks=follow_symlinks
                ).descriptor
            )
    finally:
        cache.close()
    if config is not None:
        configuration.append(load_config(Path(config)).descriptor)
    values = (
        json_ready(dict(metrics)) if isinstance(metrics, Mapping) else read_metrics(Path(metrics))
    )
    checks = [t if isinstance(t, Threshold) else Threshold.parse(t) for t in thresholds]
    predicate = TestResult.evaluate(
        step=step, metrics=values, thresholds=checks, configuration=configuration, url=url
    )
    statement = Statement(
        subject=[subject], predicateType=TEST_RESULT_V01, predicate=predicate.to_dict()
    )
    statement.check_structure()
    return statement
