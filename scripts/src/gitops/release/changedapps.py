"""What the build workflow builds: the apps whose folder changed between two commits, with what it needs to build
and bump each one (build context, image repository from the first environment's release.yaml, version, tag)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from gitops import git
from gitops.errors import GitopsError
from gitops.model import release

ZERO_SHA = "0" * 40


def _buildable(root: Path, head: str) -> list[str]:
    out = git.run(root, "ls-tree", "--name-only", "-z", f"{head}:apps")
    return sorted(a for a in out.split("\0") if a and git.show(root, head, f"apps/{a}/Dockerfile") is not None)


def _version(root: Path, head: str, app: str) -> str:
    """[project].version of the app's pyproject.toml (the release the code calls itself), else the chart's
    appVersion; "" when neither says."""
    text = git.show(root, head, f"apps/{app}/pyproject.toml")
    if text:
        version = tomllib.loads(text).get("project", {}).get("version")
        if version:
            return str(version)
    chart = git.show(root, head, f"apps/{app}/chart/Chart.yaml") or ""
    m = re.search(r"^appVersion:\s*['\"]?([^'\"\s]+)", chart, re.MULTILINE)
    return m.group(1) if m else ""


def changed_apps(root: Path, base: str, head: str, notes: list[str] | None = None) -> list[dict[str, str]]:
    """Apps with a Dockerfile whose ``apps/<app>/`` differs between ``base`` and ``head``.

    A base that is all zeros (a new branch) or absent from the clone (a force push) cannot be compared: every
    buildable app is listed, which costs a rebuild but never skips one, and ``notes`` says so.
    """
    head_sha = git.rev_parse(root, head)
    if head_sha is None:
        raise GitopsError(f"{head!r} names no commit in this clone")
    apps = _buildable(root, head_sha)
    base_sha = None if base in ("", ZERO_SHA) else git.rev_parse(root, base)
    if base_sha is None:
        if notes is not None:
            notes.append(f"base {base!r} is not a commit in this clone: listing every buildable app")
        changed = apps
    else:
        out = git.run(root, "diff", "--name-only", "-z", base_sha, head_sha, "--", "apps/")
        touched = {p.split("/")[1] for p in out.split("\0") if p.count("/") >= 2}
        changed = [a for a in apps if a in touched]
    layout = release.layout(root)
    first = layout.order[0] if layout.order else ""
    result = []
    for app in changed:
        pins = release.read(root, first, app, head_sha) if first else None
        if pins is None:
            raise GitopsError(
                f"apps/{app} changed but {release.release_file(first or '<first env>', app)} does not exist: "
                "the build needs it to know the image repository and where to bump the new image"
            )
        version = _version(root, head_sha, app)
        # A tag per build (`0.2.0-1a2b3c4`): never overwritten, and it still reads as the release it is.
        tag = f"{version}-{head_sha[:7]}" if version else f"sha-{head_sha[:7]}"
        result.append({"app": app, "context": f"apps/{app}", "image": pins.repository, "version": version, "tag": tag})
    return result
