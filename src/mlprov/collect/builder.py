"""Who ran a step and as which invocation: from the user, from CI variables, or local.

GitHub Actions and GitLab CI are recognised from their documented environment
variables; anywhere else the builder is `https://mlprov.dev/builders/local` and the
invocation a fresh `urn:uuid:`.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

LOCAL_BUILDER = "https://mlprov.dev/builders/local"


@dataclass(frozen=True)
class BuilderIdentity:
    """The builder id, the invocation id, and which CI (if any) they came from."""

    builder_id: str
    invocation_id: str
    ci: str | None = None


def detect_builder(
    env: Mapping[str, str], *, builder_id: str | None = None, invocation_id: str | None = None
) -> BuilderIdentity:
    """Builder and invocation ids: the given ones win, then CI variables, then local ones."""
    ci: str | None = None
    found_builder: str | None = None
    found_invocation: str | None = None
    if env.get("GITHUB_ACTIONS") == "true":
        ci = "github-actions"
        server = env.get("GITHUB_SERVER_URL", "https://github.com").rstrip("/")
        hosted = env.get("RUNNER_ENVIRONMENT", "github-hosted")
        found_builder = f"{server}/actions/runner/{hosted}"
        repo, run = env.get("GITHUB_REPOSITORY"), env.get("GITHUB_RUN_ID")
        if repo and run:
            attempt = env.get("GITHUB_RUN_ATTEMPT", "1")
            found_invocation = f"{server}/{repo}/actions/runs/{run}/attempts/{attempt}"
    elif env.get("GITLAB_CI") == "true":
        ci = "gitlab-ci"
        server = env.get("CI_SERVER_URL", "https://gitlab.com").rstrip("/")
        project, runner = env.get("CI_PROJECT_PATH"), env.get("CI_RUNNER_ID")
        if project and runner:
            found_builder = f"{server}/{project}/-/runners/{runner}"
        else:
            found_builder = f"{server}/-/runners"
        found_invocation = env.get("CI_JOB_URL")
    return BuilderIdentity(
        builder_id=builder_id or found_builder or LOCAL_BUILDER,
        invocation_id=invocation_id or found_invocation or uuid.uuid4().urn,
        ci=ci,
    )


def utc_now() -> str:
    """The current time as an RFC 3339 UTC timestamp with second precision."""
    return dt.datetime.now(dt.UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_timestamp(text: str, *, what: str) -> str:
    """Normalise a user-given RFC 3339 / ISO 8601 time to UTC `...Z`; InputError if invalid."""
    from mlprov.errors import InputError

    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InputError(f"{what}: {text!r} is not an RFC 3339 timestamp") from None
    if when.tzinfo is None:
        raise InputError(f"{what}: {text!r} has no timezone (add Z or +HH:MM)")
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
