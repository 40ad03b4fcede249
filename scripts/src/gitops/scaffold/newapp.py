"""`gitops new-app`: a new service copied from the reference app (`gitops.scaffold.reference`), and later its first
release in each later environment.

An app reaches the environments in two steps, because a promotion target runs a copy of the chart taken from a
commit of ``main`` (docs/adr/0006-promoted-charts-are-copied-into-the-environment.md), and a new app's chart is in no
commit yet:

1. ``gitops new-app NAME`` writes the app and its folder in the first environment (dev): an overlay with the
   environment's hostname and a release with the app's first image tag. The build workflow replaces that tag with the
   first image it builds once the change is merged.
2. ``gitops new-app NAME --env prod``, once the app is merged and runs in the environment before prod, writes prod's
   folder whole: its overlay, its first release (the image the previous environment runs) and the chart copied from
   HEAD with its provenance. From then on ``gitops promote`` moves it like any other app. Until then prod has no
   folder for the app, no Application, and ``gitops validate`` accepts that (gitops.checks.rules).

Both steps write to the work tree only, all or nothing, and leave the commit to the developer: the result is
reviewed as a pull request like any other change.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from gitops import git
from gitops import model as repomodel
from gitops.errors import GitopsError
from gitops.model import release
from gitops.scaffold.catalog import (
    Placement,
    catalog_info,
    chart_readme,
    current_owner,
    docs_index,
    mkdocs_yml,
    placements,
)
from gitops.scaffold.gateway import add_listener
from gitops.scaffold.reference import (
    CATALOG_FILE,
    CHART_README,
    CHART_README_TEMPLATE,
    DOCS_INDEX,
    FIRST_VERSION,
    LOCK_SUFFIX,
    MKDOCS_FILE,
    TEMPLATE_APP,
    AppSpec,
    check_name,
    check_spec,
    description_of,
    hostname,
    overlay_text,
    release_text,
    reset_versions,
    substitute,
    template_files,
    template_spec,
)
from gitops.scaffold.transaction import Transaction, transaction


@dataclass
class Result:
    """What a run wrote, for the summary printed to the developer."""

    created: list[str] = field(default_factory=list)
    modified: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)

    next_steps: list[str] = field(default_factory=list)

    def text(self) -> str:
        out = [*self.lines]
        out += [f"  created  {p}" for p in self.created]
        out += [f"  modified {p}" for p in self.modified]
        return "\n".join([*out, *self.next_steps]) + "\n"


def _venv_tool(name: str) -> Path:
    path = Path(sys.executable).parent / name
    if not path.exists():
        raise GitopsError(f"{path} is missing: run `make setup`")
    return path


def _normalise_python(root: Path, app_dir: Path) -> None:
    """Format the copied code with the repository's ruff settings: a name of another length moves line breaks, and
    a package name sorts differently among the imports."""
    ruff = str(_venv_tool("ruff"))
    config = str(root / "pyproject.toml")
    targets = [str(p) for p in sorted(app_dir.rglob("*.py"))]
    if not targets:
        return
    for cmd in (
        [ruff, "check", "--quiet", "--config", config, "--select", "I", "--fix", "--exit-zero", *targets],
        [ruff, "format", "--quiet", "--config", config, *targets],
    ):
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            raise GitopsError(f"`{' '.join(cmd[:3])}` failed on the new app: {(proc.stderr or proc.stdout).strip()}")


# --- gitops new-app NAME ------------------------------------------------------------------------------------------


def create(root: Path, name: str, *, port: int | None, owner: str, description: str | None) -> Result:
    """Create ``apps/<name>/`` from the reference app and its folder in every environment that follows a branch."""
    model = repomodel.load(root)
    check_name(root, name, model)
    old = template_spec(root)
    new = AppSpec(name, old.port if port is None else port, description or old.description, owner)
    check_spec(new)
    files = template_files(root)
    creation_envs = [e for e in model.environments.values() if e.name in model.promotion.order and not e.promoted]
    if not creation_envs:
        raise GitopsError(f"{repomodel.PROMOTION_FILE} names no environment: a new app starts in the first one")
    for env in creation_envs:
        if not env.domain:
            raise GitopsError(f"{env.folder}/env.yaml has no `domain`: the app's hostname there would be unknown")

    result = Result(lines=[f"created app {name} from {old.name} (port {new.port}, owner {new.owner}):"])
    with transaction(root) as tx:
        app_dir = tx.stage(f"apps/{name}")
        prefix = f"apps/{old.name}/"
        for rel in files:
            inner = substitute(rel[len(prefix) :], old, new)
            target = app_dir / inner
            target.parent.mkdir(parents=True, exist_ok=True)
            data = (root / rel).read_bytes()
            try:
                text = data.decode()
            except UnicodeDecodeError:  # binary: copied as it is
                target.write_bytes(data)
            else:
                text = reset_versions(rel, substitute(text, old, new, lock_file=rel.endswith(LOCK_SUFFIX)))
                target.write_text(text)
            shutil.copymode(root / rel, target)
        _normalise_python(root, app_dir)

        listeners: dict[str, str] = {}
        for env in creation_envs:
            _stage_env(tx, model, env, name, old.name, _first_pins(model, env, name, old.name))
            _stage_listener(root, env, name, listeners)
        for rel, text in listeners.items():
            tx.edit(rel, text)

        where = [Placement(env, [hostname(name, env)]) for env in creation_envs]
        catalog = catalog_info(root, model.promotion.order, name, new.description, new.owner, where)
        (app_dir / CATALOG_FILE).write_text(catalog)
        (app_dir / MKDOCS_FILE).write_text(mkdocs_yml(name, new.description))
        (app_dir / DOCS_INDEX).parent.mkdir(parents=True, exist_ok=True)
        (app_dir / DOCS_INDEX).write_text(docs_index(name, new, model))
        if (app_dir / "chart" / CHART_README_TEMPLATE).is_file():
            (app_dir / CHART_README).write_text(chart_readme(app_dir / "chart"))

        created, modified = tx.commit()

    result.created = [f"{p}/" for p in created]
    result.modified = modified
    for env in creation_envs:
        result.lines.append(f"  {env.name}: Application {name}-{env.name} at https://{hostname(name, env)}")
    promoted = [e.name for e in model.environments.values() if e.name in model.promotion.order and e.promoted]
    next_steps = [
        "next: `gitops validate`, then commit and open a pull request; once merged, the build workflow builds the",
        f"  first image and bumps it into {creation_envs[0].name}.",
    ]
    for env in promoted:
        next_steps.append(
            f"  {env} runs a copy of the chart from a commit of main, so {name} reaches it after the merge: "
            f"`gitops new-app {name} --env {env}`"
        )
    result.next_steps = next_steps
    return result


def _first_pins(model: repomodel.Repo, env: repomodel.Environment, name: str, template: str) -> release.Pins:
    """The new app's first release in the first environment: its image repository (the reference app's, renamed)
    and its first version as the tag; its chart is apps/<name>/chart on main."""
    ae = model.app_envs.get((env.name, template))
    repository = f"docker.io/azurelaboratory/{name}"
    if ae is not None and ae.release is not None and ae.release.pins is not None:
        repository = ae.release.pins.repository.replace(template, name)
    return release.Pins(repository, FIRST_VERSION, "")


def _stage_env(
    tx: Transaction,
    model: repomodel.Repo,
    env: repomodel.Environment,
    name: str,
    template: str,
    pins: release.Pins,
    chart_from: tuple[str, str] | None = None,
) -> None:
    """The app's folder in ``env``: its overlay, its release.yaml and, with ``chart_from`` (a commit and a chart
    folder), the chart copied from that folder at that commit."""
    values_rel = f"{env.folder}/{name}/values.yaml"
    release_rel = f"{env.folder}/{name}/release.yaml"
    template_release = model.read(f"{env.folder}/{template}/release.yaml")
    if template_release is not None:  # its comments name the reference app
        template_release = template_release.replace(template, name)
    folder = tx.stage(f"{env.folder}/{name}")
    template_values = model.read(f"{env.folder}/{template}/values.yaml")
    (folder / "values.yaml").write_text(overlay_text(template_values, hostname(name, env), values_rel))
    (folder / "release.yaml").write_text(release_text(template_release, pins, release_rel))
    if chart_from is not None:
        git.export_tree(tx.root, *chart_from, folder / "chart")


def _stage_listener(root: Path, env: repomodel.Environment, name: str, edits: dict[str, str]) -> None:
    rel = f"clusters/{env.cluster}/gateway.yaml"
    if not env.cluster or not (root / rel).is_file():
        return  # a cluster without a shared Gateway of ours: nothing to attach to
    text = edits.get(rel) or (root / rel).read_text()
    edits[rel] = add_listener(text, rel, f"https-{name}-{env.name}", hostname(name, env), f"{name}-{env.name}-tls")


# --- gitops new-app NAME --env ENV --------------------------------------------------------------------------------


def first_release(root: Path, name: str, env_name: str) -> Result:
    """The app's first release in ``env_name``: the previous environment's image, the exact commit of the chart."""
    model = repomodel.load(root)
    if name not in model.apps:
        raise GitopsError(f"apps/{name}/chart/Chart.yaml does not exist: create the app with `gitops new-app {name}`")
    if env_name not in model.environments:
        known = ", ".join(model.environments) or "none"
        raise GitopsError(f"unknown environment {env_name!r}: environments/{env_name}/ does not exist (known: {known})")
    env = model.environments[env_name]
    order = model.promotion.order
    if env_name not in order or order.index(env_name) == 0:
        raise GitopsError(
            f"{env_name} is not a later environment of {repomodel.PROMOTION_FILE} ({' → '.join(order)}): "
            f"`gitops new-app {name}` already created the app in the first one"
        )
    folder = f"{env.folder}/{name}"
    if (root / folder / "release.yaml").exists():
        raise GitopsError(f"{folder}/release.yaml exists: {name} is in {env_name}; move releases with `gitops promote`")
    previous = order[order.index(env_name) - 1]
    source = release.read(root, previous, name)
    if source is None:
        raise GitopsError(
            f"{name} has no release in {previous} ({release.release_file(previous, name)}): a release reaches "
            f"{env_name} from {previous}"
        )
    if not env.domain:
        raise GitopsError(f"{env.folder}/env.yaml has no `domain`: the app's hostname there would be unknown")

    notes: list[str] = []
    if source.follows:
        commit = git.head(root)  # the chart on main, as of the commit this runs on
        tree = git.tree_id(root, commit, f"apps/{name}/chart")
        if tree is None:
            raise GitopsError(
                f"apps/{name}/chart is not in commit {commit[:12]}: {env_name} runs a copy of the chart taken from a "
                f"commit, so commit and merge the app first, then run this on a checkout of that commit"
            )
        tracked = git.rev_parse(root, f"refs/remotes/origin/{repomodel.TRACKED_BRANCH}")
        if tracked is not None and not git.is_ancestor(root, commit, tracked):
            notes.append(
                f"warning: {commit[:12]} is not on origin/{repomodel.TRACKED_BRANCH} yet: the chart copy records it "
                f"as its source, so run this on a checkout of a merged commit"
            )
        pins = release.Pins(source.repository, source.tag, source.digest, commit, tree)
    else:
        pins = source  # from a promotion target: its release and copy as they are
    if source.follows:
        chart_from = (pins.chart_commit, f"apps/{name}/chart")
    else:
        chart_from = (git.head(root), release.chart_dir(previous, name))
    copied = f"chart copied from {chart_from[1]} at {chart_from[0][:12]}"
    result = Result(lines=[*notes, f"first release of {name} in {env_name} ({pins.image}, {copied}):"])
    with transaction(root) as tx:
        _stage_env(tx, model, env, name, TEMPLATE_APP, pins, chart_from)
        listeners: dict[str, str] = {}
        _stage_listener(root, env, name, listeners)
        for rel, text in listeners.items():
            tx.edit(rel, text)
        app_dir = root / "apps" / name
        where = [*placements(model, name), Placement(env, [hostname(name, env)])]
        catalog = catalog_info(root, order, name, description_of(app_dir), current_owner(app_dir), where)
        if (app_dir / CATALOG_FILE).is_file():
            tx.edit(f"apps/{name}/{CATALOG_FILE}", catalog)
        created, modified = tx.commit()
    result.created = [f"{p}/" for p in created]
    result.modified = modified
    result.lines.append(f"  {env_name}: Application {name}-{env_name} at https://{hostname(name, env)}")
    result.next_steps.append(
        f"next: `gitops validate {env_name}`, commit, open a pull request: merging it deploys {name} to {env_name}; "
        f"later releases move with `gitops promote --from {previous} --to {env_name} --app {name}`"
    )
    return result
