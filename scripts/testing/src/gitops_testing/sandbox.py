"""A throwaway copy of the repository as a real git repository: for tests and benchmarks that change things.

``snapshot_repo`` clones the repository and lays the work tree over it (uncommitted and untracked files included,
deleted files removed), then commits, so the copy renders and validates exactly like the work tree it came from,
with its own history to add commits to.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from gitops import git
from gitops.model import release

IDENTITY = {
    "GIT_AUTHOR_NAME": "gitops sandbox",
    "GIT_AUTHOR_EMAIL": "sandbox@gitops.invalid",
    "GIT_COMMITTER_NAME": "gitops sandbox",
    "GIT_COMMITTER_EMAIL": "sandbox@gitops.invalid",
}


def _git(repo: Path, *args: str) -> str:
    env = {**os.environ, **IDENTITY}
    proc = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise git.GitError(f"git {' '.join(args)} in {repo}: {proc.stderr.strip()}")
    return proc.stdout.strip()


def snapshot_repo(source: Path, dest: Path) -> Path:
    """``dest``: a clone of ``source`` whose ``main`` has one more commit holding ``source``'s work tree."""
    _git(source.parent, "clone", "--quiet", "--no-hardlinks", str(source), str(dest))
    branch = _git(dest, "rev-parse", "--abbrev-ref", "HEAD")
    if branch != "main":
        _git(dest, "checkout", "--quiet", "-B", "main")
    wanted = set(git.WorkTree(source).files())
    for tracked in _git(dest, "ls-files", "-z").split("\0"):
        if tracked and tracked not in wanted:
            (dest / tracked).unlink(missing_ok=True)
    for rel in wanted:
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source / rel, target)
    commit(dest, "work tree")
    return dest


def commit(repo: Path, message: str) -> str:
    """Commit everything in the work tree; returns the new HEAD (or the old one when nothing changed)."""
    _git(repo, "add", "-A")
    if _git(repo, "status", "--porcelain"):
        _git(repo, "commit", "--quiet", "--no-verify", "-m", message)
    return _git(repo, "rev-parse", "HEAD")


def copy_charts(repo: Path, env: str, sha: str) -> None:
    """Give every app of a promotion target the chart of ``sha`` (apps/<app>/chart), as a promotion does: the copy in
    environments/<env>/<app>/chart/ and its provenance in release.yaml. The caller commits."""
    for path in sorted((repo / "environments" / env).glob("*/release.yaml")):
        app = path.parent.name
        rel = path.relative_to(repo).as_posix()
        tree = git.tree_id(repo, sha, release.source_chart(app))
        if tree is None:
            raise git.GitError(f"{release.source_chart(app)} is not in {sha[:12]}: nothing to copy into {env}")
        shutil.rmtree(path.parent / "chart", ignore_errors=True)
        git.export_tree(repo, sha, release.source_chart(app), path.parent / "chart")
        pins = release.parse(path.read_text(), rel)
        new = release.Pins(pins.repository, pins.tag, pins.digest, sha, tree)
        path.write_text(release.update(path.read_text(), new, rel))
