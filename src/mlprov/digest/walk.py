"""Listing the files of a tree safely: ignores, symlink policy, special files.

The symlink rule, shared by every command that reads a tree: a link is refused unless
asked for (`follow_symlinks`, the CLI's `--follow-symlinks` / `--allow-symlinks`),
except that the links of a Hugging Face cache snapshot into its own repository's
`blobs/` are always followed (the blob's content is hashed under the link's name). A
`symlink_boundary`, when given, keeps followed links inside it. Sockets, FIFOs and
devices are refused; a directory cycle through links is refused.
"""

from __future__ import annotations

import fnmatch
import os
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

from mlprov.digest.hub import snapshot_blobs
from mlprov.errors import InputError

#: Paths model_signing ignores by default, relative to the tree's root.
DEFAULT_IGNORES: tuple[str, ...] = (".git", ".gitattributes", ".github", ".gitignore")


class FileInfo(NamedTuple):
    """A regular file found in a tree: where to read it (for a followed symlink, the real
    path of its target, opened with O_NOFOLLOW), its name in the tree (the link's), its
    stat, and the (st_dev, st_ino) of the directory holding it (which names its cache record).

    A NamedTuple: a million of them are built for a million files.
    """

    path: str
    name: str
    st: os.stat_result
    parent: tuple[int, int]

    @property
    def leaf(self) -> str:
        """The file's own name in its directory."""
        return self.path.rpartition(os.sep)[2]


class IgnoreRules:
    """Glob patterns over tree-relative POSIX paths.

    A pattern without `/` matches a file or directory name at any depth; one with `/`
    matches the whole relative path; `root:NAME` matches only at the top of the tree
    (the model_signing defaults). An ignored directory is not entered.
    """

    def __init__(self, patterns: Iterable[str]) -> None:
        self.patterns = [p.rstrip("/") for p in patterns if p.strip("/")]
        self.root_names = {p[5:] for p in self.patterns if p.startswith("root:")}
        self.globs = [p for p in self.patterns if not p.startswith("root:")]

    def __bool__(self) -> bool:
        return bool(self.patterns)

    def match(self, rel: str) -> bool:
        if rel in self.root_names:
            return True
        if not self.globs:
            return False
        name = rel.rsplit("/", 1)[-1]
        for pattern in self.globs:
            if "/" in pattern:
                if fnmatch.fnmatchcase(rel, pattern):
                    return True
            elif fnmatch.fnmatchcase(name, pattern):
                return True
        return False


def default_ignore_patterns() -> list[str]:
    """The model_signing default ignores, as top-level-only patterns."""
    return [f"root:{p}" for p in DEFAULT_IGNORES]


def _kind(mode: int) -> str:
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "a special file"


def _within(path: str, boundary: str) -> bool:
    return path == boundary or path.startswith(boundary.rstrip(os.sep) + os.sep)


def _stat_root(root: Path, *, follow_symlinks: bool) -> os.stat_result:
    try:
        st = os.lstat(root)
    except FileNotFoundError:
        raise InputError(f"{root}: no such file or directory") from None
    except OSError as exc:
        raise InputError(f"{root}: cannot read ({exc.strerror})") from None
    if stat.S_ISLNK(st.st_mode):
        if not (follow_symlinks or _is_hub_file(root)):
            raise InputError(f"{root} is a symlink (use --follow-symlinks to hash its target)")
        try:
            st = os.stat(root)
        except OSError:
            raise InputError(f"{root} is a broken symlink") from None
    return st


def _is_hub_file(link: Path) -> bool:
    """Whether `link` is a file of a hub snapshot linking into its repository's blobs/."""
    target = os.path.realpath(link)
    blobs = snapshot_blobs(os.path.realpath(os.path.dirname(link) or os.curdir))
    return bool(blobs) and os.path.dirname(target) == blobs


def list_files(
    root: Path,
    *,
    ignore: IgnoreRules | None = None,
    follow_symlinks: bool = False,
    symlink_boundary: Path | None = None,
) -> tuple[bool, list[FileInfo]]:
    """List the regular files under `root` (or `root` itself if it is a file).

    Returns (is_directory, files); a single file is named `.`. Raises InputError for
    symlinks (unless followed within the boundary), special files and unreadable dirs.
    """
    root = Path(root)
    st, ctx = open_tree(
        root, ignore=ignore, follow_symlinks=follow_symlinks, symlink_boundary=symlink_boundary
    )
    if stat.S_ISREG(st.st_mode):
        try:
            parent = os.stat(os.path.dirname(root) or os.curdir)
            where = (parent.st_dev, parent.st_ino)
        except OSError:
            where = (-1, -1)  # a directory we cannot stat holds no cache record
        real = os.path.realpath(root) if os.path.islink(root) else str(root)
        return False, [FileInfo(real, ".", st, where)]
    if not stat.S_ISDIR(st.st_mode):
        raise InputError(f"{root} is {_kind(st.st_mode)}, not a file or directory")
    return True, walk_subtree(root_subtree(root, st), ctx)


def root_subtree(root: Path, st: os.stat_result) -> Subtree:
    """The whole tree as a Subtree: names start at the root, which is its only ancestor."""
    key = (st.st_dev, st.st_ino)
    return Subtree(str(root), "", key, frozenset({key}))


class Subtree(NamedTuple):
    """A directory left for later (another process): where, its name prefix, its
    (st_dev, st_ino), and those of its ancestors (itself included)."""

    path: str
    prefix: str
    key: tuple[int, int]
    ancestors: frozenset[tuple[int, int]]


class WalkContext(NamedTuple):
    """What a walk of one tree needs besides the directory: picklable, for worker processes.

    `boundary` ("" for none) keeps followed links inside it; `hub_blobs` is the real path
    of the hub repository's `blobs/` when the tree is (in) a snapshot, else "".
    """

    rules: IgnoreRules
    follow: bool
    boundary: str
    hub_blobs: str = ""


def open_tree(
    root: Path,
    *,
    ignore: IgnoreRules | None = None,
    follow_symlinks: bool = False,
    symlink_boundary: Path | None = None,
) -> tuple[os.stat_result, WalkContext]:
    """Check the root of a walk (as list_files does) and fix the rules the walk follows."""
    st = _stat_root(root, follow_symlinks=follow_symlinks)
    boundary = os.path.realpath(symlink_boundary) if symlink_boundary else ""
    blobs = snapshot_blobs(os.path.realpath(root)) if stat.S_ISDIR(st.st_mode) else ""
    return st, WalkContext(ignore or IgnoreRules(()), follow_symlinks, boundary, blobs)


def walk_subtree(
    tree: Subtree, ctx: WalkContext, *, defer: list[Subtree] | None = None
) -> list[FileInfo]:
    """The files under one directory; with `defer`, its subdirectories are left there instead."""
    out: list[FileInfo] = []
    _walk(tree.path, tree.prefix, tree.key, ctx, set(tree.ancestors), out, defer)
    return out


def _walk(
    directory: str,
    prefix: str,
    here: tuple[int, int],
    ctx: WalkContext,
    visited: set[tuple[int, int]],
    out: list[FileInfo],
    defer: list[Subtree] | None = None,
) -> None:
    try:
        entries = list(os.scandir(directory))
    except PermissionError:
        raise InputError(f"{directory}: permission denied") from None
    except OSError as exc:
        raise InputError(f"{directory}: cannot list ({exc.strerror})") from None
    ignored = ctx.rules.match if ctx.rules else None
    append = out.append
    for entry in entries:  # this loop runs once per file of the tree: kept lean
        rel = prefix + entry.name
        if ignored is not None and ignored(rel):
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError as exc:
            raise InputError(f"{entry.path}: cannot stat ({exc.strerror})") from None
        kind = stat.S_IFMT(st.st_mode)
        if kind == stat.S_IFREG:
            append(FileInfo(entry.path, rel, st, here))
            continue
        path = entry.path
        if kind == stat.S_IFLNK:
            target, st = _follow(entry.path, ctx)
            kind = stat.S_IFMT(st.st_mode)
            if kind == stat.S_IFREG:
                path = target  # hashed at its real path, opened with O_NOFOLLOW
        if kind == stat.S_IFDIR:
            key = (st.st_dev, st.st_ino)
            if key in visited:
                raise InputError(f"{entry.path}: directory cycle through a symlink")
            if defer is not None:
                defer.append(Subtree(entry.path, rel + "/", key, frozenset(visited | {key})))
                continue
            visited.add(key)
            _walk(entry.path, rel + "/", key, ctx, visited, out)
            visited.discard(key)
        elif kind == stat.S_IFREG:
            append(FileInfo(path, rel, st, here))
        else:
            raise InputError(f"{entry.path} is {_kind(st.st_mode)}; refusing to hash it")


def _follow(path: str, ctx: WalkContext) -> tuple[str, os.stat_result]:
    """The real path and stat of what the link at `path` points to, if the rule allows it."""
    target = os.path.realpath(path)
    if ctx.hub_blobs and os.path.dirname(target) == ctx.hub_blobs:
        try:
            st = os.stat(target, follow_symlinks=False)
        except OSError:
            raise InputError(f"{path} links to a missing blob ({target})") from None
        if stat.S_ISREG(st.st_mode):
            return target, st
    if not ctx.follow:
        if ctx.hub_blobs:
            raise InputError(
                f"{path} is a symlink pointing outside the tree and its repository's blobs/"
                f" ({target}); use --follow-symlinks to hash its target"
            )
        raise InputError(f"{path} is a symlink (use --follow-symlinks to hash its target)")
    if ctx.boundary and not _within(target, ctx.boundary):
        raise InputError(f"{path} is a symlink pointing outside the tree ({target})")
    try:
        return target, os.stat(target)
    except OSError:
        raise InputError(f"{path} is a broken symlink") from None
