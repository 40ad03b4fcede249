"""The repository as data: environments (in promotion order), apps, and what each environment runs of each app.

Layout (see README):

- ``environments/promotion.yaml``: ``order: [dev, prod]``. The first environment follows ``main``; every later one
  receives releases by promotion and keeps the chart it runs in its own folder.
- ``environments/<env>/env.yaml``: ``name``, ``cluster``, ``namespace``, ``domain``, ``sync``.
- ``environments/<env>/<app>/release.yaml``: ``image: {repository, tag, digest}``; in a promotion target also
  ``chart: {commit, tree}``, the provenance of ``environments/<env>/<app>/chart/`` (`gitops.release`).
- ``environments/<env>/<app>/values.yaml``: the environment's Helm values overlay, never promoted.
- ``apps/<app>/chart/``: each app's chart, which the first environment runs from ``main``.

Everything an environment runs is read at one revision, ``main`` (or the work tree standing in for it): rendering
needs no other commit (docs/adr/0006-promoted-charts-are-copied-into-the-environment.md).

Loading never stops at the first problem: everything that cannot be read is recorded in ``Repo.problems`` (with
file and line) and the rest of the model is still built, so `gitops validate` reports every problem at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gitops import git, yamlio
from gitops.findings import Finding

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
    sync: dict = field(default_factory=dict)
    promoted: bool = False  # receives releases by promotion: its apps' charts are copies in its own folder
    file: str = ""  # env.yaml, when present

    @property
    def appset_file(self) -> str:
        return f"{self.folder}/applicationset.yaml"


@dataclass
class Image:
    repository: Any = ""
    tag: Any = ""
    digest: Any = ""


@dataclass
class Release:
    """A release.yaml as written, before any rule is applied (`gitops.rules` checks it; `gitops.release` parses it
    strictly for the verbs that move releases)."""

    file: str
    image: Image
    chart: Any  # the `chart:` mapping (commit, tree) of a promotion target; None when absent
    data: Any  # the parsed file (round-trip nodes), for line look-ups and templating

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
    data = ld.mapping(ld.yaml(PROMOTION_FILE), PROMOTION_FILE, "order: [<env>, …]")
    if ld.snapshot.read(PROMOTION_FILE) is None:
        ld.problem(
            "missing: it must list the environments in promotion order (`order: [dev, prod]`)", file=PROMOTION_FILE
        )
    if data is None:
        return Promotion([])
    order = data.get("order")
    if not isinstance(order, list) or not all(isinstance(e, str) and e for e in order):
        ld.problem(
            "`order` must be a list of environment names", file=PROMOTION_FILE, line=yamlio.line_of(data, "order")
        )
        order = []
    for i, name in enumerate(order):
        if order.index(name) != i:
            ld.problem(f"`order` names {name!r} twice", file=PROMOTION_FILE, line=yamlio.line_of(data, "order", i))
    for key in data:
        if key != "order":
            ld.problem(f"unknown key {key!r} (expected: order)", file=PROMOTION_FILE, line=yamlio.line_of(data, key))
    return Promotion([str(e) for e in order], data)


def _load_env(ld: _Loader, name: str, promotion: Promotion) -> Environment:
    folder = f"environments/{name}"
    path = f"{folder}/env.yaml"
    env = Environment(name=name, folder=folder, promoted=promotion.is_promoted(name))
    if not ld.snapshot.exists(path):
        ld.problem("missing env.yaml (name, cluster, namespace, domain, sync)", file=path, env=name)
        return env
    env.file = path
    data = ld.mapping(ld.yaml(path, env=name), path, "name, cluster, namespace, domain, sync", env=name)
    if data is None:
        return env
    for key in ("name", "cluster", "namespace", "domain"):
        value = data.get(key)
        if not isinstance(value, str) or not value:
            ld.problem(f"`{key}` must be a non-empty string", file=path, line=yamlio.line_of(data, key), env=name)
        else:
            setattr(env, key, str(value))
    if env.name != name:
        ld.problem(
            f"`name` is {data.get('name')!r} but the folder is {name!r}",
            file=path,
            line=yamlio.line_of(data, "name"),
            env=name,
        )
        env.name = name
    sync = data.get("sync")
    if sync is not None and not isinstance(sync, dict):
        ld.problem("`sync` must be a mapping", file=path, line=yamlio.line_of(data, "sync"), env=name)
    env.sync = yamlio.plain(sync) if isinstance(sync, dict) else {}
    return env


def _load_app_env(ld: _Loader, env: Environment, app: str) -> AppEnv:
    ae = AppEnv(env=env.name, app=app, folder=f"{env.folder}/{app}")
    data = ld.mapping(
        ld.yaml(ae.release_file, env=env.name, app=app), ae.release_file, "image, chart", env=env.name, app=app
    )
    if data is not None:
        image = data.get("image") if isinstance(data.get("image"), dict) else {}
        ae.release = Release(
            file=ae.release_file,
            image=Image(image.get("repository", ""), image.get("tag", ""), image.get("digest", "")),
            chart=data.get("chart"),
            data=data,
        )
    text = ld.snapshot.read(ae.values_file)
    if text is not None:
        try:
            values = yamlio.load(text, ae.values_file)
        except yamlio.YamlError as e:
            ld.problems.append(Finding("yaml", e.message, env=env.name, app=app, file=ae.values_file, line=e.line))
        else:
            ae.values = values if values is not None else {}  # a file of comments only is an empty overlay
    return ae
