"""The digest engine: files and trees to digests and manifests, fast and safely."""

from mlprov.digest.algorithms import ALGORITHMS, DEFAULT_ALGORITHM, new_hasher
from mlprov.digest.cache import DigestCache, default_cache_dir
from mlprov.digest.manifest import (
    FileEntry,
    ManifestDiff,
    TreeManifest,
    compare_manifests,
    path_order_key,
    tree_digest,
)
from mlprov.digest.tree import digest_file, digest_tree
from mlprov.digest.walk import DEFAULT_IGNORES

__all__ = [
    "ALGORITHMS",
    "DEFAULT_ALGORITHM",
    "DEFAULT_IGNORES",
    "DigestCache",
    "FileEntry",
    "ManifestDiff",
    "TreeManifest",
    "compare_manifests",
    "default_cache_dir",
    "digest_file",
    "digest_tree",
    "new_hasher",
    "path_order_key",
    "tree_digest",
]
