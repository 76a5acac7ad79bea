"""`mlprov digest`: digests and manifests of files and trees; `--check` against a manifest."""

from __future__ import annotations

from pathlib import Path

import click

from mlprov.cli._common import byte_progress, echo_json, force_option, json_option
from mlprov.digest import ALGORITHMS, DigestCache, TreeManifest, compare_manifests, digest_tree
from mlprov.errors import InputError

EPILOG = """\b
Examples:
  mlprov digest ./model                       # tree digest (same as OpenSSF model_signing)
  mlprov digest ./model --files               # and every file's digest
  mlprov digest ./data --manifest-out data.manifest.json
  mlprov digest --check data.manifest.json    # exit 1 if any file changed, went or came
"""


def _read_manifest(path: Path) -> TreeManifest:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read manifest {path}: {exc.strerror}") from None
    return TreeManifest.from_json(data, source=str(path))


@click.command(epilog=EPILOG)
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "--algorithm",
    type=click.Choice(ALGORITHMS),
    default="sha256",
    show_default=True,
    help="Digest of each file.",
)
@click.option("--files", "show_files", is_flag=True, help="Also print every file's digest.")
@click.option("--ignore", multiple=True, metavar="GLOB", help="Skip matching paths (repeatable).")
@click.option(
    "--no-default-ignores",
    is_flag=True,
    help="Do not skip .git, .gitattributes, .github, .gitignore at the top of a tree.",
)
@click.option("--follow-symlinks", is_flag=True, help="Hash symlink targets inside the tree.")
@click.option(
    "--shard-size",
    type=click.IntRange(min=1),
    help="Hash in shards of this many bytes (OMS `shards`: one big file uses every core).",
)
@click.option("--no-cache", is_flag=True, help="Do not use or update the digest cache.")
@click.option("--jobs", type=click.IntRange(min=1), help="Worker threads (default: one per CPU).")
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
    paths: tuple[Path, ...],
    algorithm: str,
    show_files: bool,
    ignore: tuple[str, ...],
    no_default_ignores: bool,
    follow_symlinks: bool,
    shard_size: int | None,
    no_cache: bool,
    jobs: int | None,
    manifest_out: Path | None,
    check_manifest: Path | None,
    force: bool,
    as_json: bool,
) -> None:
    """Print the digest of each file or directory tree PATH, and optionally its manifest."""
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
    cache = None if no_cache else DigestCache()
    manifests = []
    try:
        for path in paths:
            with byte_progress(f"hashing {path}") as (on_total, advance):
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
        echo_json([m.model_dump(mode="json") for m in manifests])
        return
    for path, manifest in zip(paths, manifests, strict=True):
        click.echo(f"sha256:{manifest.digest}  {path}")
        if show_files:
            for entry in manifest.files:
                click.echo(f"  {manifest.algorithm}:{entry.digest}  {entry.path}")


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
                click.echo(f"{label}: {name}")
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
