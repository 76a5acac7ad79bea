"""Datasets as ResourceDescriptors: a local file or tree, a hub snapshot or `hf://`, or a URI.

A local dataset is digested (tree digest for a directory, sha256 for a file) and keeps
its manifest so the caller can write it beside the attestation; so is one in object
storage (`s3://bucket/prefix/`, `gs://`, `az://`, `https://.../file`), hashed where it
is and recorded with its URI. A URI given with its digest (`URI#sha256=HEX`, pip's
convention), or one mlprov cannot read, is recorded with that digest and never fetched.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlprov.collect.artifacts import (
    check_name,
    describe_path,
    is_remote_url,
    is_uri,
    parse_digest,
    split_uri_digest,
)
from mlprov.collect.hf import is_hub_uri
from mlprov.digest import DigestCache, TreeManifest
from mlprov.errors import InputError
from mlprov.export.licenses import normalize_license
from mlprov.statement import ResourceDescriptor

#: Split names recorded when a dataset's own name is one of them.
SPLITS = {"train": "train", "validation": "validation", "val": "validation", "test": "test"}


@dataclass(frozen=True)
class DatasetRecord:
    """A dataset's descriptor and, for a local directory, its manifest."""

    descriptor: ResourceDescriptor
    manifest: TreeManifest | None = None


def describe_dataset(
    name: str,
    location: str | Path,
    *,
    digest: str | None = None,
    split: str | None = None,
    license: str | None = None,
    role: str = "dataset",
    cache: DigestCache | None = None,
    follow_symlinks: bool = False,
) -> DatasetRecord:
    """Describe one dataset named `name` at a path, hub snapshot, `hf://datasets/org/name@REV`
    (resolved offline from the hub cache) or `URI#sha256=HEX`."""
    what = role.replace("-", " ")
    check_name(name, what=what)
    notes: dict[str, Any] = {"role": role}
    chosen_split = split or SPLITS.get(name.lower())
    if chosen_split:
        notes["split"] = chosen_split
    if license is not None:
        notes["license"] = normalize_license(license, what=f"--license {name}")
    text = str(location)
    remote = isinstance(location, str) and is_uri(text) and not is_hub_uri(text)
    if remote and split_uri_digest(text)[1] is None and digest is None and is_remote_url(text):
        described = describe_path(text, name=name, cache=cache, annotations=notes)
        return DatasetRecord(described.descriptor, described.manifest if described.is_dir else None)
    if remote:
        uri, fragment = split_uri_digest(text)
        spec = digest or fragment
        if spec is None:
            raise InputError(
                f"{what} {name}: mlprov cannot read {uri}; give its digest as URI#sha256=HEX"
            )
        descriptor = ResourceDescriptor(
            name=name, uri=uri, digest=parse_digest(spec, what=f"{what} {name}"), annotations=notes
        )
        return DatasetRecord(descriptor)
    described = describe_path(
        location,
        name=name,
        cache=cache,
        annotations=notes,
        follow_symlinks=follow_symlinks,
        model_facts=role == "base-model",
    )
    if digest is not None:
        expected = parse_digest(digest, what=f"{what} {name}")
        actual = described.descriptor.digest or {}
        if any(actual.get(k) != v for k, v in expected.items()):
            raise InputError(f"{what} {name}: {location} does not have digest {digest}")
    return DatasetRecord(described.descriptor, described.manifest if described.is_dir else None)
