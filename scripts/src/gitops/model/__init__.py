"""The repository as data: environments (in promotion order), apps, and what each environment runs of each app.

Layout (see README):

- ``environments/promotion.yaml``: ``order: [dev, prod]``. The first environment follows ``main``; every later one
  receives releases by promotion and keeps the chart it runs in its own folder.
- ``environments/<env>/env.yaml``: ``name``, ``cluster``, ``namespace``, ``domain`` (how it syncs is its
  ApplicationSet's, said there only).
- ``environments/<env>/<app>/release.yaml``: ``image: {repository, tag, digest}``; in a promotion target also
  ``chart: {commit, tree}``, the provenance of ``environments/<env>/<app>/chart/`` (`gitops.release`).
- ``environments/<env>/<app>/values.yaml``: the environment's Helm values overlay, never promoted.
- ``apps/<app>/chart/``: each app's chart, which the first environment runs from ``main``.

Everything an environment runs is read at one revision, ``main`` (or the work tree standing in for it): rendering
needs no other commit (docs/adr/0006-promoted-charts-are-copied-into-the-environment.md).

Each of these files is checked against its JSON Schema (``model/schemas/``) as it is loaded. Loading never stops at
the first problem: everything that cannot be read is recorded in ``Repo.problems`` (with
file and line) and the rest of the model is still built, so `gitops validate` reports every problem at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gitops import git, yamlio
from gitops.findings import Finding
from gitops.model import release, schema
from gitops.model.release import Pins

# The repository Argo CD reads. Sources pointing anywhere else are upstream charts: pinned, never rendered here.
REPO_URL = "https://github.com/azurelaboratory/gitops-monorepo.git"
# The branch every source of this repository follows: Argo CD reads an environment's folder and dev's chart there.
TRACKED_BRANCH = "main"

PROMOTION_FILE = "environments/promotion.yaml"


def same_repo(url: str) -> bool:
    def norm(u: str) -> str:
        return u.strip().lower().removesuffix("/").removesuffix(".git")

    return norm(url) == norm(REPO_URL)


@dataclass
class Environment:
    name: str
    folder: str  # environments/<name>
    cluster: str = ""
    namespace: str = ""
    domain: str = ""
    promoted: bool = False  # receives releases by promotion: its apps' charts are copies in its own folder
    file: str = ""  # env.yaml, when present

    @property
    def appset_file(self) -> str:
        return f"{self.folder}/applicationset.yaml"


@dataclass
class Release:
    """A release.yaml: as written (for lines and the rules that depend on the environment) and, when it meets its
    schema, as the release it names."""

    file: str
    data: Any  # the parsed file (round-trip nodes)
    pins: Pins | None  # None when the file breaks its schema (the problems are in Repo.problems)

    @property
    def chart(self) -> Any:
        """The `chart:` mapping as written (a promotion target's copy provenance); None when absent."""
        return self.data.get("chart") if isinstance(self.data, dict) else None

    def line(self, *path: str) -> int | None:
        return yamlio.line_of(self.data, *path)


@dataclass
class AppEnv:
    """One app in one environment: which release it runs and how its values differ."""

    env: str
    app: str
    folder: str  # environments/<env>/<app>
    release: Release | None = None
    values: Any = None  # parsed overlay; None when missing or unreadable

    @property
    def release_file(self) -> str:
        return f"{self.folder}/release.yaml"

    @property
    def values_file(self) -> str:
        return f"{self.folder}/values.yaml"

    @property
    def chart_dir(self) -> str:
        """The promoted copy of the chart (promotion targets only)."""
        return f"{self.folder}/chart"


@dataclass
class Promotion:
    order: list[str]
    data: Any = None

    def is_promoted(self, env: str) -> bool:
        """Every environment after the first receives its releases by promotion."""
        return env in self.order[1:]


@dataclass
class Repo:
    root: Path
    snapshot: git.Snapshot
    promotion: Promotion
    environments: dict[str, Environment]  # promotion order first, then folders not in the order (flagged)
    apps: list[str]  # apps/<app>/chart
    app_envs: dict[tuple[str, str], AppEnv]  # (env, app), including env folders whose app has no chart
    problems: list[Finding] = field(default_factory=list)

    def chart_dir(self, app: str) -> str:
        return f"apps/{app}/chart"

    def env_apps(self, env: str) -> list[AppEnv]:
        return [ae for (e, _), ae in sorted(self.app_envs.items()) if e == env]

    def read(self, path: str) -> str | None:
        return self.snapshot.read(path)


class _Loader:
    def __init__(self, snapshot: git.Snapshot) -> None:
        self.snapshot = snapshot
        self.problems: list[Finding] = []

    def problem(self, message: str, *, file: str, line: int | None = None, env: str = "", app: str = "") -> None:
        self.problems.append(Finding("repo-rules", message, env=env, app=app, file=file, line=line))

    def yaml(self, path: str, *, env: str = "", app: str = "") -> Any:
        """The parsed file, or None (problem recorded) when missing or invalid."""
        text = self.snapshot.read(path)
        if text is None:
            return None
        try:
            return yamlio.load(text, path)
        except yamlio.YamlError as e:
            self.problems.append(Finding("yaml", e.message, env=env, app=app, file=path, line=e.line))
            return None

    def schema(self, data: Any, path: str, name: str, *, env: str = "", app: str = "") -> bool:
        """Record every way ``data`` breaks its schema; whether it met it."""
        found = schema.problems(data, name)
        for message, line in found:
            self.problems.append(Finding(schema.CHECK, message, env=env, app=app, file=path, line=line))
        return not found

    def mapping(self, data: Any, path: str, what: str, *, env: str = "", app: str = "") -> dict | None:
        if data is None:
            return None
        if not isinstance(data, dict):
            self.problem(f"expected a mapping ({what}), got {type(data).__name__}", file=path, line=1, env=env, app=app)
            return None
        return data


def load(root: Path, ref: str | None = None) -> Repo:
    """The model of the repository at ``ref`` (default: the work tree)."""
    root = root.resolve()  # helm runs inside chart directories: every path handed to it must be absolute
    snap = git.snapshot(root, ref)
    ld = _Loader(snap)

    promotion = _load_promotion(ld)
    folders = [n for n in snap.children("environments") if snap.is_dir(f"environments/{n}")]
    names = [n for n in promotion.order if n in folders] + [n for n in folders if n not in promotion.order]
    environments = {n: _load_env(ld, n, promotion) for n in names}
    apps = sorted(a for a in snap.children("apps") if snap.exists(f"apps/{a}/chart/Chart.yaml"))

    app_envs: dict[tuple[str, str], AppEnv] = {}
    for env in environments.values():
        in_folder = [a for a in snap.children(env.folder)]
        for app in sorted(set(apps) | set(in_folder)):
            app_envs[(env.name, app)] = _load_app_env(ld, env, app)
    return Repo(root, snap, promotion, environments, apps, app_envs, ld.problems)


def _load_promotion(ld: _Loader) -> Promotion:
    if ld.snapshot.read(PROMOTION_FILE) is None:
        ld.problem(
            "missing: it must list the environments in promotion order (`order: [dev, prod]`)", file=PROMOTION_FILE
        )
    data = ld.yaml(PROMOTION_FILE)
    if data is None or not ld.schema(data, PROMOTION_FILE, "promotion"):
        return Promotion([], data)
    return Promotion([str(e) for e in data["order"]], data)


def _load_env(ld: _Loader, name: str, promotion: Promotion) -> Environment:
    folder = f"environments/{name}"
    path = f"{folder}/env.yaml"
    env = Environment(name=name, folder=folder, promoted=promotion.is_promoted(name))
    if not ld.snapshot.exists(path):
        ld.problem("missing env.yaml (name, cluster, namespace, domain)", file=path, env=name)
        return env
    env.file = path
    data = ld.yaml(path, env=name)
    if data is None or not ld.schema(data, path, "env", env=name):
        return env
    env.cluster, env.namespace, env.domain = (str(data[k]) for k in ("cluster", "namespace", "domain"))
    if data["name"] != name:
        ld.problem(
            f"`name` is {data.get('name')!r} but the folder is {name!r}",
            file=path,
            line=yamlio.line_of(data, "name"),
            env=name,
        )
    return env


def _load_app_env(ld: _Loader, env: Environment, app: str) -> AppEnv:
    ae = AppEnv(env=env.name, app=app, folder=f"{env.folder}/{app}")
    data = ld.yaml(ae.release_file, env=env.name, app=app)
    if data is not None:
        chart = data.get("chart") if isinstance(data, dict) else None
        if isinstance(chart, dict) and "revision" in chart:
            # The release format from before chart copies: the rules name it and its fix (gitops.checks.rules).
            ae.release = Release(ae.release_file, data, None)
        elif ld.schema(data, ae.release_file, "release", env=env.name, app=app):
            ae.release = Release(ae.release_file, data, release.from_data(data, ae.release_file))
        else:
            ae.release = Release(ae.release_file, data, None)
    text = ld.snapshot.read(ae.values_file)
    if text is not None:
        try:
            values = yamlio.load(text, ae.values_file)
        except yamlio.YamlError as e:
            ld.problems.append(Finding("yaml", e.message, env=env.name, app=app, file=ae.values_file, line=e.line))
        else:
            ae.values = values if values is not None else {}  # a file of comments only is an empty overlay
    return ae
