"""`mlprov digest`: digests and manifests of files and trees; `--check` against a manifest."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from mlprov.cli._common import (
    byte_progress,
    cluster_option,
    display_name,
    echo_json,
    follow_symlinks_option,
    force_option,
    json_option,
    storage_option,
)
from mlprov.digest import ALGORITHMS, DigestCache, TreeManifest, compare_manifests, digest_tree
from mlprov.errors import InputError

EPILOG = """\b
Examples:
  mlprov digest ./model                       # tree digest (same as OpenSSF model_signing)
  mlprov digest raw.csv                       # a file: its sha256, as sha256sum prints it
  mlprov digest hf://org/name@main            # a hub snapshot, from the local HF cache
  mlprov digest ./model --json                # manifest and model facts (formats, params, pickle)
  mlprov digest ./model --files               # and every file's digest
  mlprov digest ./data --manifest-out data.manifest.json
  mlprov digest --check data.manifest.json    # exit 1 if any file changed, went or came
  mlprov digest s3://bucket/datasets/train/   # the same digest the files give on disk
  mlprov digest s3://bucket/train/ --record-versions --manifest-out train.manifest.json
  mlprov digest s3://bucket/train/ --check train.manifest.json
  mlprov digest s3://bucket/train/ --cluster tcp://scheduler:8786   # hashed on Dask workers
  AWS_ENDPOINT_URL=http://127.0.0.1:9000 mlprov digest s3://bucket/data/   # MinIO, Ceph, R2
"""


#: Largest manifest `--check` reads (a manifest of a million files is about 150 MB).
MAX_MANIFEST_BYTES = 512 << 20


def _read_manifest(path: Path) -> TreeManifest:
    from mlprov.fsio import read_input

    data = read_input(path, limit=MAX_MANIFEST_BYTES, what="manifest")
    return TreeManifest.from_json(data, source=str(path))


@click.command(epilog=EPILOG)
@click.argument("locations", metavar="[PATH|URL|hf://ORG/NAME@REV]...", nargs=-1)
@click.option(
    "--algorithm",
    "--hash",
    "algorithm",
    type=click.Choice(ALGORITHMS),
    default="sha256",
    show_default=True,
    help="Digest of each file.",
)
@click.option("--files", "show_files", is_flag=True, help="Also print every file's digest.")
@click.option(
    "--ignore",
    "--ignore-path",
    "--ignore-paths",
    "ignore",
    multiple=True,
    metavar="GLOB",
    help="Skip matching paths (repeatable; model_signing's --ignore-paths).",
)
@click.option(
    "--no-default-ignores",
    is_flag=True,
    help="Do not skip .git, .gitattributes, .github, .gitignore at the top of a tree.",
)
@follow_symlinks_option
@click.option(
    "--shard-size",
    type=click.IntRange(min=1),
    help="Hash in shards of this many bytes (OMS `shards`: one big file uses every core).",
)
@click.option("--no-cache", is_flag=True, help="Do not use or update the digest cache.")
@click.option(
    "--jobs",
    type=click.IntRange(min=1),
    help="Worker threads (default: one per CPU; for a remote URL, objects fetched at once: 32).",
)
@click.option(
    "--record-versions",
    is_flag=True,
    help="Record each object's version id in the manifest (remote URLs; versioned buckets).",
)
@storage_option
@cluster_option
@click.option(
    "--manifest-out",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write the manifest of the (single) PATH to this file.",
)
@click.option(
    "--check",
    "check_manifest",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Compare PATH (default: the manifest's tree beside it) with a manifest; exit 1 on change.",
)
@force_option
@json_option
@click.pass_context
def digest(
    ctx: click.Context,
    locations: tuple[str, ...],
    algorithm: str,
    show_files: bool,
    ignore: tuple[str, ...],
    no_default_ignores: bool,
    follow_symlinks: bool,
    shard_size: int | None,
    no_cache: bool,
    jobs: int | None,
    record_versions: bool,
    cluster: str | None,
    manifest_out: Path | None,
    check_manifest: Path | None,
    force: bool,
    as_json: bool,
) -> None:
    """Print the digest of each file or directory tree PATH, and optionally its manifest.

    A file prints its own digest (what `sha256sum` prints, and what attestations record
    and `lineage` finds); a tree, its OpenSSF Model Signing digest. `--json` labels both:
    `identity` and `omsIdentity` (for a lone file, sha256 over its digest).

    A hub reference `hf://[datasets/]org/name@REVISION` is read from the local Hugging
    Face cache (HF_HOME / HF_HUB_CACHE), never downloaded.
    """
    from mlprov.collect.hf import HubSnapshot, is_hub_uri, resolve_hub_uri

    snapshots: dict[str, HubSnapshot] = {
        text: resolve_hub_uri(text) for text in locations if is_hub_uri(text)
    }
    from mlprov.digest.urls import is_remote

    paths: tuple[Path | str, ...] = tuple(
        snapshots[t].path if t in snapshots else t if is_remote(t) else Path(t) for t in locations
    )
    shown: dict[Path | str, str] = {p: t for p, t in zip(paths, locations, strict=True)}
    expected = _read_manifest(check_manifest) if check_manifest else None
    if expected is not None:
        if len(paths) > 1:
            raise InputError("--check takes at most one PATH")
        if not paths:
            beside = Path(check_manifest or ".").parent / expected.name
            paths = (beside if beside.exists() else Path(expected.name),)
    if not paths:
        raise InputError("give at least one PATH (see mlprov digest --help)")
    if manifest_out and len(paths) != 1:
        raise InputError("--manifest-out takes exactly one PATH")
    if expected is not None:
        # Re-digest exactly as the manifest was made: its algorithm, method and ignores.
        algorithm, shard_size = expected.algorithm, expected.shard_size
        ignore, no_default_ignores = tuple(expected.ignore), True
    explicit = ctx.get_parameter_source("cluster") == click.core.ParameterSource.COMMANDLINE
    if cluster and explicit and not all(isinstance(p, str) for p in paths):
        raise InputError("--cluster hashes remote URLs (s3://, gs://, az://); not local paths")
    if record_versions and not all(isinstance(p, str) for p in paths):
        raise InputError("--record-versions records object versions: give remote URLs only")
    cache = None if no_cache else DigestCache()
    manifests = []
    try:
        for path in paths:
            with byte_progress(f"hashing {_shown(path, shown)}") as (on_total, advance):
                manifests.append(
                    digest_tree(
                        path,
                        algorithm=algorithm,
                        ignore=ignore,
                        default_ignores=not no_default_ignores,
                        follow_symlinks=follow_symlinks,
                        shard_size=shard_size,
                        cache=cache,
                        workers=jobs,
                        progress=advance,
                        on_total=on_total,
                        record_versions=record_versions,
                        cluster=cluster if isinstance(path, str) else None,
                    )
                )
    finally:
        if cache:
            cache.close()
    if expected is not None:
        _report_check(ctx, expected, manifests[0], as_json)
        return
    if manifest_out:
        from mlprov.fsio import write_bytes_atomic  # tempfile & co.: only when writing

        write_bytes_atomic(manifest_out, manifests[0].to_json(), force=force)
    if as_json:
        echo_json(
            [
                _described(path, manifest, snapshots.get(shown.get(path, "")))
                if isinstance(path, Path)
                else _labelled(manifest)
                for path, manifest in zip(paths, manifests, strict=True)
            ]
        )
        return
    for path, manifest in zip(paths, manifests, strict=True):
        click.echo(f"{_printed_digest(manifest)}  {display_name(_shown(path, shown))}")
        if show_files:
            for entry in manifest.files:
                click.echo(f"  {manifest.algorithm}:{entry.digest}  {display_name(entry.path)}")


def _lone_file(manifest: TreeManifest) -> bool:
    return len(manifest.files) == 1 and manifest.files[0].path == "."


def _printed_digest(manifest: TreeManifest) -> str:
    """What names PATH: a file's own digest (as `sha256sum` prints it, and as attestations
    and lineage record a file), a tree's OMS digest."""
    if _lone_file(manifest) and manifest.method == "files":
        return f"{manifest.algorithm}:{manifest.files[0].digest}"
    return f"sha256:{manifest.digest}"


def _labelled(manifest: TreeManifest) -> dict[str, Any]:
    """A manifest as JSON, with `identity` (what attestations record) and `omsIdentity`
    (the OpenSSF Model Signing digest: for a lone file, sha256 of its digest) apart."""
    data: dict[str, Any] = json.loads(manifest.to_json())
    data["identity"] = _printed_digest(manifest)
    data["omsIdentity"] = f"sha256:{manifest.digest}"
    return data


def _described(path: Path, manifest: TreeManifest, snapshot: Any) -> dict[str, Any]:
    """A manifest as JSON, with the model facts its files' headers give and, for a hub
    reference, the repository and commit it resolved to."""
    from mlprov.collect.model_formats import scan_model

    data = _labelled(manifest)
    data["modelFacts"] = scan_model(path, manifest).to_annotation()
    if snapshot is not None:
        data["uri"] = snapshot.uri
        data["huggingFace"] = {
            "repoType": snapshot.kind,
            "repoId": snapshot.repo_id,
            "revision": snapshot.revision,
            "requestedRevision": snapshot.requested,
        }
    return data


def _shown(path: Path | str, given: dict[Path | str, str]) -> str:
    """A path or hub reference as given, or a URL without credentials."""
    if isinstance(path, str):
        from mlprov.digest.urls import public_url

        return public_url(path)
    return given.get(path, str(path))


def _report_check(
    ctx: click.Context, expected: TreeManifest, actual: TreeManifest, as_json: bool
) -> None:
    diff = compare_manifests(expected, actual)
    if as_json:
        echo_json({"ok": diff.ok, **diff.model_dump()})
    else:
        for label, names in (
            ("changed", diff.changed),
            ("missing", diff.missing),
            ("added", diff.added),
        ):
            for name in names:
                click.echo(f"{label}: {display_name(name)}")
        if diff.ok:
            click.echo(f"OK: {actual.file_count} files match the manifest (sha256:{actual.digest})")
        else:
            total = len(diff.changed) + len(diff.missing) + len(diff.added)
            click.echo(
                f"FAILED: {len(diff.changed)} changed, {len(diff.missing)} missing, "
                f"{len(diff.added)} added ({total} differences)",
                err=True,
            )
    if not diff.ok:
        ctx.exit(1)
