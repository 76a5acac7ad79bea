"""The code a step ran, from the `git` binary: commit, remote, branch, dirty state.

git missing, or a directory outside any repository, is recorded as absent (with the
reason) rather than an error. Remotes are recorded as URIs (scp-style `git@host:r` as
`ssh://git@host/r`, local paths as `file:///…`), credentials removed.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from mlprov.statement import ResourceDescriptor

GIT_TIMEOUT = 60


@dataclass(frozen=True)
class GitSource:
    """What git says about a working tree; `absent` holds the reason when nothing is known."""

    commit: str | None = None
    remote: str | None = None
    branch: str | None = None
    dirty: bool | None = None
    diff_sha256: str | None = None
    untracked: int | None = None
    absent: str | None = None

    def descriptor(self) -> ResourceDescriptor | None:
        """The commit as a resolvedDependency: `git+URI@refs/heads/B` with a gitCommit digest.

        The remote is a URI (`git+https://…`, `git+ssh://…`, `git+file:///…`; see
        `remote_uri`), never one with credentials.
        """
        if self.commit is None:
            return None
        uri = None
        if self.remote:
            uri = f"git+{self.remote}" + (f"@refs/heads/{self.branch}" if self.branch else "")
        notes: dict[str, object] = {"role": "source", "dirty": bool(self.dirty)}
        if self.diff_sha256:
            notes["diffSha256"] = self.diff_sha256
        if self.untracked:
            notes["untrackedFiles"] = self.untracked
        return ResourceDescriptor(
            name="source", uri=uri, digest={"gitCommit": self.commit}, annotations=notes
        )


def strip_credentials(url: str) -> str:
    """Remove `user:token@` from an http(s) remote URL (scp-style `git@host:` is kept)."""
    parts = urlsplit(url)
    if parts.scheme in ("http", "https", "ssh", "git") and "@" in parts.netloc:
        host = parts.netloc.rsplit("@", 1)[1]
        keep_user = parts.scheme == "ssh" and parts.username and not parts.password
        netloc = f"{parts.username}@{host}" if keep_user else host
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    return url


#: `[user@]host:path`, git's scp-like syntax (no scheme, a colon before any slash).
_SCP_LIKE = re.compile(
    r"^(?:(?P<user>[^@/:\[]+)@)?"  # user@
    r"(?P<host>\[[^\]]+\]|[^@/:\[]+)"  # host or [IPv6]
    r":(?P<path>(?!//).*)$"  # :path (not ://)
)
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:[\\/]")


def remote_uri(url: str, *, base: Path | None = None) -> str:
    """A remote as a URI with no credentials, as SPDX download locations spell sources.

    `https://user:token@host/r.git` -> `https://host/r.git` (query and fragment dropped:
    tokens hide there too); `ssh://git:pw@host/r` -> `ssh://git@host/r`; scp-style
    `git@host:org/r.git` -> `ssh://git@host/org/r.git`; a local path (a clone of
    `/src/project`, or one relative to `base`) -> `file:///src/project`.
    """
    text = url.strip()
    if text.startswith("file://"):
        return "file://" + urlsplit(text).path
    if _SCHEME.match(text):
        parts = urlsplit(strip_credentials(text))
        netloc = parts.netloc
        if "@" in netloc and parts.scheme not in ("ssh", "git+ssh"):
            netloc = netloc.rsplit("@", 1)[1]  # no user names outside ssh either
        return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    scp = None if _WINDOWS_DRIVE.match(text) else _SCP_LIKE.match(text)
    if scp:
        user = scp.group("user")
        path = scp.group("path")
        netloc = f"{user}@{scp.group('host')}" if user else scp.group("host")
        return f"ssh://{netloc}/{path.lstrip('/')}"
    local = Path(text)
    if not local.is_absolute() and base is not None:
        local = base / local
    return Path(os.path.abspath(local)).as_uri()


class _Git:
    def __init__(self, executable: str, directory: Path) -> None:
        self.executable, self.directory = executable, directory
        # Never prompt, never read the user's pager or external diff tools.
        self.env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_OPTIONAL_LOCKS": "0"}
        self.env.pop("GIT_DIR", None)
        self.env.pop("GIT_WORK_TREE", None)

    def run(self, *args: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [self.executable, "-C", str(self.directory), "--no-pager", *args],
            capture_output=True,
            env=self.env,
            timeout=GIT_TIMEOUT,
            check=False,
        )

    def text(self, *args: str) -> str | None:
        done = self.run(*args)
        return done.stdout.decode("utf-8", "replace").strip() if done.returncode == 0 else None


def collect_git(
    directory: Path | str = ".",
    *,
    git: str | None = None,
    outputs: Sequence[Path | str] = (),
) -> GitSource:
    """Describe the git working tree containing `directory` (absent, with reason, if none).

    `outputs` are the run's own files (its Statement, logs, manifests, products): while
    untracked they do not make the tree dirty. A tracked file among them that changed
    still does.
    """
    executable = git or shutil.which("git")
    if executable is None:
        return GitSource(absent="git executable not found")
    directory = Path(directory)
    if not directory.is_dir():
        return GitSource(absent=f"{directory} is not a directory")
    repo = _Git(executable, directory)
    try:
        if repo.text("rev-parse", "--is-inside-work-tree") != "true":
            return GitSource(absent="not inside a git working tree")
        commit = repo.text("rev-parse", "--verify", "HEAD^{commit}")
        if not commit:
            return GitSource(absent="git repository has no commits")
        branch = repo.text("symbolic-ref", "--quiet", "--short", "HEAD") or None
        remote = _remote(repo, branch)
        tracked = repo.run("status", "--porcelain", "--untracked-files=no")
        excluded = _pathspec_excludes(repo, outputs)
        status = repo.run(
            "status", "--porcelain", "--untracked-files=normal", "--", ":(top)", *excluded
        )
        untracked = sum(1 for line in status.stdout.splitlines() if line.startswith(b"??"))
        dirty = (
            tracked.returncode != 0
            or status.returncode != 0
            or bool(tracked.stdout.strip())
            or bool(untracked)
        )
        diff_sha = None
        if dirty:
            # Reproducible by an auditor: `git diff HEAD --binary | sha256sum`.
            diff = repo.run("diff", "HEAD", "--binary", "--no-ext-diff", "--no-color")
            diff_sha = hashlib.sha256(diff.stdout).hexdigest()
    except (OSError, subprocess.TimeoutExpired) as exc:
        return GitSource(absent=f"git failed: {exc}")
    return GitSource(commit, remote, branch, dirty, diff_sha, untracked)


def _pathspec_excludes(repo: _Git, outputs: Sequence[Path | str]) -> list[str]:
    """`:(top,exclude,literal)PATH` pathspecs for the outputs inside the working tree."""
    if not outputs:
        return []
    top_text = repo.text("rev-parse", "--show-toplevel")
    if not top_text:
        return []
    top = Path(top_text).resolve()
    found = []
    for output in outputs:
        try:
            relative = Path(output).resolve().relative_to(top)
        except (ValueError, OSError):
            continue  # outside the working tree: git never sees it
        if relative.parts:
            found.append(f":(top,exclude,literal){relative.as_posix()}")
    return found


def _remote(repo: _Git, branch: str | None) -> str | None:
    """The branch's upstream remote URL, else `origin`'s, else the only remote's."""
    names = (repo.text("remote") or "").split()
    if not names:
        return None
    chosen = None
    if branch:
        chosen = repo.text("config", "--get", f"branch.{branch}.remote")
    if chosen not in names:
        chosen = "origin" if "origin" in names else names[0]
    url = repo.text("remote", "get-url", chosen or "")
    return remote_uri(url, base=repo.directory) if url else None
