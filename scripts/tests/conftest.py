"""Real git repositories for the tooling's tests: a copy of this monorepo (with the work tree's config as it is now),
committed into a temporary repo, cloned afresh for every test that writes to it; and small repositories of a few
files, for the tests of one module."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from gitops.model import release
from gitops_testing import sandbox

REPO = Path(__file__).resolve().parents[2]
# What the release tooling reads (config folders, and the lint config `gitops validate` applies); copied from the
# work tree so tests see uncommitted config too, not only what HEAD holds.
COPIED = ("environments", "apps", "platform", "clusters", ".yamllint")
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache", ".ruff_cache", ".hypothesis", "*.egg-info")
IMAGE = "docker.io/azurelaboratory/pod-details"
APP = "pod-details"


def digest(seed: str) -> str:
    return "sha256:" + hashlib.sha256(seed.encode()).hexdigest()


def as_author(author: str) -> dict[str, str]:
    """The environment of a process that commits as ``author`` (author and committer)."""
    email = author.lower().replace(" ", ".") + "@example.com"
    return {
        **os.environ,
        "GIT_AUTHOR_NAME": author,
        "GIT_AUTHOR_EMAIL": email,
        "GIT_COMMITTER_NAME": author,
        "GIT_COMMITTER_EMAIL": email,
    }


def _git(cwd: Path, *args: str, author: str = "Fixture") -> str:
    env = as_author(author)
    proc = subprocess.run(["git", "-C", str(cwd), *args], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, f"git {' '.join(args)} in {cwd}: {proc.stderr}"
    return proc.stdout


@dataclass
class State:
    head: str
    porcelain: str
    files: dict[str, str]  # path -> sha256 of every file outside .git


@dataclass
class GitRepo:
    path: Path

    def git(self, *args: str, author: str = "Fixture") -> str:
        return _git(self.path, *args, author=author)

    def head(self) -> str:
        return self.git("rev-parse", "HEAD").strip()

    def read(self, rel: str) -> str:
        return (self.path / rel).read_text()

    def write(self, rel: str, text: str) -> None:
        target = self.path / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)

    def commit_all(self, message: str, author: str = "Fixture") -> str:
        self.git("add", "-A")
        self.git("commit", "--quiet", "--allow-empty", "-m", message, author=author)
        return self.head()

    def gitops(self, *args: str, author: str = "Fixture") -> subprocess.CompletedProcess[str]:
        """The CLI as a user runs it: a subprocess in the repo, committing as ``author``."""
        env = as_author(author)
        return subprocess.run(
            [sys.executable, "-m", "gitops", *args], cwd=self.path, capture_output=True, text=True, env=env, timeout=600
        )

    def ok(self, *args: str, author: str = "Fixture") -> str:
        proc = self.gitops(*args, author=author)
        assert proc.returncode == 0, f"gitops {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
        return proc.stdout

    def pins(self, env: str, app: str = APP, rev: str | None = None) -> release.Pins:
        pins = release.read(self.path, env, app, rev)
        assert pins is not None
        return pins

    def trailers(self, key: str, rev: str = "HEAD") -> list[str]:
        out = self.git("log", "-1", f"--format=%(trailers:key={key},valueonly,separator=%x00)", rev)
        return [v for v in out.strip("\n").split("\0") if v]

    def state(self) -> State:
        files = {}
        for p in sorted(self.path.rglob("*")):
            rel = p.relative_to(self.path)
            if rel.parts[0] == ".git" or not p.is_file():
                continue
            files[rel.as_posix()] = hashlib.sha256(p.read_bytes()).hexdigest()
        porcelain = self.git("status", "--porcelain", "--untracked-files=all")
        return State(self.head(), porcelain, files)

    def worktrees(self) -> list[str]:
        listing = self.git("worktree", "list", "--porcelain").splitlines()
        return [line for line in listing if line.startswith("worktree ")]

    def bump(self, tag: str, author: str = "Builder Bot") -> str:
        image = f"{IMAGE}:{tag}"
        self.ok("bump", "--env", "dev", "--app", APP, "--image", image, "--digest", digest(tag), author=author)
        return self.head()

    def app_commit(self, message: str, author: str = "Dev") -> str:
        """A change under apps/<app>/ that does not alter the rendered manifests (a comment in the chart)."""
        notes = f"apps/{APP}/chart/templates/NOTES.txt"
        self.write(notes, self.read(notes) + f"{{{{- /* {message} */}}}}\n")
        return self.commit_all(message, author=author)


def _minimal_environments(root: Path) -> None:
    """Config for when the work tree has none yet: the smallest layout the release tooling accepts."""
    files = {
        "environments/promotion.yaml": "order: [dev, prod]\n",
        "environments/dev/env.yaml": "name: dev\ncluster: dev\nnamespace: apps-dev\ndomain: example.com\n",
        "environments/prod/env.yaml": "name: prod\ncluster: prod\nnamespace: apps-prod\ndomain: example.com\n",
    }
    for env in ("dev", "prod"):
        # prod's chart copy and its provenance are written by the seed (sandbox.copy_charts), as a promotion would.
        files[f"environments/{env}/{APP}/release.yaml"] = (
            f'image:\n  repository: {IMAGE}\n  tag: "0.1.0"\n  digest: ""\n'
        )
        files[f"environments/{env}/{APP}/values.yaml"] = "{}\n"
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)


@pytest.fixture(scope="session")
def seed_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This repo's history plus its current config, committed; prod given that commit's chart, as if promoted."""
    seed = tmp_path_factory.mktemp("seed") / "repo"
    _git(REPO.parent, "clone", "--quiet", str(REPO), str(seed))
    # The tracked branch is main whatever branch this checkout is on: histories and merges are read against it.
    _git(seed, "checkout", "--quiet", "-B", "main")
    for name in COPIED:
        if (seed / name).is_dir():
            shutil.rmtree(seed / name)
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, seed / name, ignore=IGNORED, symlinks=True)
        elif (REPO / name).is_file():
            shutil.copy2(REPO / name, seed / name)
    if not (seed / "environments" / "promotion.yaml").exists():
        _minimal_environments(seed)
    _git(seed, "add", "-A")
    _git(seed, "commit", "--quiet", "--allow-empty", "-m", "fixture: the work tree's config")
    fixture = _git(seed, "rev-parse", "HEAD").strip()
    # Start with prod current: the fixture's chart copied into prod, as a promotion of the fixture commit would.
    sandbox.copy_charts(seed, "prod", fixture)
    _git(seed, "add", "-A")
    _git(seed, "commit", "--quiet", "--allow-empty", "-m", "fixture: prod runs the fixture commit's chart")
    return seed


@pytest.fixture
def repo(seed_repo: Path, tmp_path: Path) -> GitRepo:
    """A fresh clone of the seed for one test: writes never leak between tests."""
    path = tmp_path / "repo"
    _git(tmp_path, "clone", "--quiet", str(seed_repo), str(path))
    return GitRepo(path)


def pinned_tool(name: str) -> Path:
    """A tool of the pinned toolchain; a missing one fails with the command that builds it (never a skip)."""
    from gitops.toolchain import ToolMissing, tool_path

    try:
        return tool_path(name)
    except ToolMissing as e:
        pytest.fail(str(e))


@pytest.fixture(scope="session")
def helm() -> Path:
    """Rendering needs the pinned helm."""
    return pinned_tool("helm")


@pytest.fixture(scope="session")
def argocd() -> Path:
    """The pinned Argo CD, whose `argocd admin` evaluates the health checks and notifications of clusters/."""
    return pinned_tool("argocd")


@pytest.fixture(scope="session")
def upstream_chart_cache() -> None:
    """The pinned upstream charts `make tools` fetches, as recorded; a missing or different one fails the test with
    the command that fetches it (never a skip)."""
    from gitops.toolchain import chart_sources
    from gitops.toolchain.charts import ChartUnusable, cached

    for source in chart_sources().values():
        if not source.unavailable:
            try:
                cached(source)
            except ChartUnusable as e:
                pytest.fail(str(e))


@pytest.fixture(scope="session")
def clone_repo():
    """Factory: ``clone_repo(source, dest)`` clones a repository (e.g. another test's) into ``dest``."""

    def clone(source: Path, dest: Path) -> GitRepo:
        _git(dest.parent, "clone", "--quiet", str(source), str(dest))
        return GitRepo(dest)

    return clone


def write_files(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)


@pytest.fixture
def small_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[dict[str, str]], Path]:
    """Factory: ``small_repo(files)`` is a new git repository holding ``files`` ({path: text}) in one commit on
    ``main``. The test's own git commands (and the tooling's) then commit as a fixed identity."""
    for who in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{who}_NAME", "Fixture")
        monkeypatch.setenv(f"GIT_{who}_EMAIL", "fixture@example.com")

    def make(files: dict[str, str]) -> Path:
        root = tmp_path / "repo"
        _git(tmp_path, "init", "--quiet", "-b", "main", str(root))
        write_files(root, files)
        _git(root, "add", "-A")
        _git(root, "commit", "--quiet", "-m", "fixture")
        return root

    return make


@pytest.fixture
def write() -> Callable[[Path, dict[str, str]], None]:
    """``write(root, files)``: write ``files`` ({path: text}) under ``root``, making folders as needed."""
    return write_files
