"""The git side of the loop: a stand-in for GitHub, a developer's checkout, and the repository Argo CD reads.

- ``github.git`` (bare) plays GitHub: a clone of this repo at HEAD, ``main`` moves only by push.
- ``work`` is the checkout where the scenario acts as CI and as a developer: `gitops bump`, `gitops promote`,
  `gitops rollback` and plain edits commit there, unmodified, and push to ``github.git``.
- ``served.git`` (bare, a file:// URL) is what Argo CD reads. Its ``main`` is published from GitHub's ``main`` by one
  commit that makes the config runnable here (the repo URL pointed at ``served.git``, upstream charts replaced by
  stand-ins: ``e2e.substitutions``). That commit's parents are the previous published commit and the
  GitHub commit itself, so every commit the developer made (and that prod's chart revision may pin) is reachable in
  ``served.git`` with its own sha, and ``main`` only ever moves forward.

Argo CD's repo-server accepts file:// for application sources and for the git generator (its own e2e suite runs on
one), so no git daemon is needed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from gitops.errors import GitopsError
from gitops.git import Commit, WorkTree

BRANCH = "main"
# Commits must work on machines without a global git identity (CI runners, fresh containers).
IDENTITY = {"user.name": "gitops e2e", "user.email": "e2e@gitops.invalid", "commit.gpgsign": "false"}


class GitServerError(GitopsError):
    pass


def run_git(cwd: Path, *args: str, input: str | None = None, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(
        ["git", *args], cwd=cwd, input=input, capture_output=True, text=True, env={**os.environ, **(env or {})}
    )
    if proc.returncode != 0:
        raise GitServerError(f"`git {' '.join(args)}` failed in {cwd}: {proc.stderr.strip()}")
    return proc.stdout.strip()


# A transform reads the tree of a GitHub commit and returns the files to change (None deletes) for Argo CD.
Transform = Callable[[Commit], dict[str, str | None]]


@dataclass
class LocalGit:
    root: Path
    published: str | None = None  # the last commit of served.git's main
    published_from: str | None = None  # the GitHub commit it was published from
    history: list[tuple[str, str]] = field(default_factory=list)  # (github sha, served sha)

    @property
    def github(self) -> Path:
        return self.root / "github.git"

    @property
    def work(self) -> Path:
        return self.root / "work"

    @property
    def served(self) -> Path:
        return self.root / "served.git"

    @property
    def url(self) -> str:
        return f"file://{self.served}"

    def create(self, source: Path, include_work_tree: bool = False) -> str:
        """Clone ``source`` at HEAD (and, for development, its uncommitted files as one more commit); GitHub's HEAD."""
        self.root.mkdir(parents=True, exist_ok=True)
        head = run_git(source, "rev-parse", "HEAD")
        run_git(self.root, "clone", "--quiet", "--bare", "--no-local", str(source), str(self.github))
        run_git(self.github, "update-ref", f"refs/heads/{BRANCH}", head)
        run_git(self.github, "symbolic-ref", "HEAD", f"refs/heads/{BRANCH}")
        run_git(self.root, "clone", "--quiet", "--branch", BRANCH, str(self.github), str(self.work))
        for key, value in IDENTITY.items():
            run_git(self.work, "config", key, value)
        run_git(self.root, "init", "--quiet", "--bare", "--initial-branch", BRANCH, str(self.served))
        if include_work_tree:
            self._overlay(source)
            self.commit_all("e2e: the uncommitted work tree of the source checkout")
        return self.github_head()

    def _overlay(self, source: Path) -> None:
        """Make the checkout's files what the source work tree has now: tracked, untracked (not ignored), deletions."""
        wanted = set(WorkTree(source).files())
        for rel in WorkTree(self.work).files():
            if rel not in wanted:
                (self.work / rel).unlink()
        for rel in wanted:
            dest = self.work / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source / rel, dest)

    # -- the developer's and CI's side ---------------------------------------------------------------------------

    def commit_all(self, message: str) -> str:
        """Commit every change in the checkout and push it to GitHub's main (a merged PR); the new commit."""
        run_git(self.work, "add", "--all")
        run_git(self.work, "commit", "--quiet", "-m", message)
        return self.push()

    def push(self) -> str:
        run_git(self.work, "push", "--quiet", "origin", f"HEAD:refs/heads/{BRANCH}")
        return self.github_head()

    def github_head(self) -> str:
        return run_git(self.github, "rev-parse", f"refs/heads/{BRANCH}")

    def read(self, rel: str) -> str:
        return (self.work / rel).read_text()

    def write(self, rel: str, text: str) -> None:
        path = self.work / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

    # -- what Argo CD reads --------------------------------------------------------------------------------------

    def publish(self, transform: Transform, message: str) -> str:
        """Publish GitHub's main to served.git's main through ``transform``; returns the served commit."""
        source = self.github_head()
        snapshot = Commit(self.github, source)
        try:
            changes = transform(snapshot)
        finally:
            snapshot.close()
        index = self.root / "publish.index"
        env = {"GIT_INDEX_FILE": str(index)}
        run_git(self.github, "read-tree", source, env=env)
        for path, text in sorted(changes.items()):
            if text is None:
                run_git(self.github, "update-index", "--force-remove", "--", path, env=env)
                continue
            blob = run_git(self.github, "hash-object", "-w", "--stdin", input=text)
            run_git(self.github, "update-index", "--add", "--cacheinfo", f"100644,{blob},{path}", env=env)
        tree = run_git(self.github, "write-tree", env=env)
        index.unlink(missing_ok=True)
        parents = [p for p in (self.published, source) if p]
        args = [a for p in parents for a in ("-p", p)]
        sha = run_git(
            self.github,
            "commit-tree",
            tree,
            *args,
            "-m",
            f"{message}\n\nPublished for Argo CD from {source}.",
            env=_identity_env(),
        )
        run_git(self.github, "push", "--quiet", str(self.served), f"{sha}:refs/heads/{BRANCH}")
        self.published, self.published_from = sha, source
        self.history.append((source, sha))
        return sha


def _identity_env() -> dict[str, str]:
    name, email = IDENTITY["user.name"], IDENTITY["user.email"]
    return {
        "GIT_AUTHOR_NAME": name,
        "GIT_AUTHOR_EMAIL": email,
        "GIT_COMMITTER_NAME": name,
        "GIT_COMMITTER_EMAIL": email,
    }
