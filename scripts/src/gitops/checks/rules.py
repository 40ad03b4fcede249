"""Repository rules that no schema can express: shape of the promotion, completeness, releases and the chart copies
they name, where Applications read this repository, unique hostnames."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from gitops import git, yamlio
from gitops.findings import Finding
from gitops.model import PROMOTION_FILE, TRACKED_BRANCH, AppEnv, Repo, same_repo
from gitops.render.appset import Application
from gitops.render.helm import Rendered

CHECK = "repo-rules"


def promotion(repo: Repo) -> list[Finding]:
    out = []
    data = repo.promotion.data
    folders = set(repo.environments)
    for i, name in enumerate(repo.promotion.order):
        if not repo.snapshot.is_dir(f"environments/{name}"):
            out.append(
                Finding(
                    CHECK,
                    f"the promotion order names {name!r}, but environments/{name}/ does not exist",
                    file=PROMOTION_FILE,
                    line=yamlio.line_of(data, "order", i),
                )
            )
    for name in sorted(folders - set(repo.promotion.order)):
        out.append(
            Finding(
                CHECK,
                f"environments/{name}/ is not in the promotion order: add it to `order` in {PROMOTION_FILE}",
                env=name,
                file=PROMOTION_FILE,
                line=yamlio.line_of(data, "order"),
            )
        )
    return out


def releases(repo: Repo, envs: Iterable[str]) -> tuple[list[Finding], list[str]]:
    """Every app folder of an environment holds a well-formed release and an overlay; in a promotion target, also
    the chart copy the release names. Returns findings and notes (checks that could not run here, said by name)."""
    out: list[Finding] = []
    notes: list[str] = []
    envs = list(envs)
    known = _chart_ids(repo, envs)
    for env_name in envs:
        env = repo.environments[env_name]
        for ae in repo.env_apps(env_name):

            def problem(message: str, file: str, line: int | None = None, ae=ae) -> None:
                out.append(Finding(CHECK, message, env=ae.env, app=ae.app, file=file, line=line))

            has_release = repo.snapshot.exists(ae.release_file)
            has_values = repo.snapshot.exists(ae.values_file)
            has_copy = repo.snapshot.is_dir(ae.chart_dir)
            if env.promoted and not (has_release or has_values or has_copy):
                continue  # not released here yet: a new app reaches a promotion target by `gitops new-app --env`
            if not env.promoted and ae.app not in repo.apps:
                problem(f"{ae.folder}/ has no chart: expected apps/{ae.app}/chart/Chart.yaml", ae.folder)
                continue
            if not has_release and env.promoted:
                left = [f for f, there in ((ae.values_file, has_values), (f"{ae.chart_dir}/", has_copy)) if there]
                problem(
                    f"no release.yaml, but {' and '.join(left)} stay(s): {ae.app} was removed from {env_name} "
                    f"without its folder (remove {ae.folder}/ entirely), or its release.yaml is missing",
                    ae.release_file,
                )
            elif not has_release:
                problem(
                    f"missing release.yaml: every app of apps/ runs in {env_name} (image: {{repository, tag, digest}})",
                    ae.release_file,
                )
            if not has_values:
                problem(
                    "missing values.yaml: every app has an overlay in every environment (it may be empty: `{}`)",
                    ae.values_file,
                )
            if ae.values is not None and not isinstance(ae.values, dict):
                problem("values.yaml must be a mapping of Helm values", ae.values_file, 1)
            if ae.release is not None:
                out.extend(_release(repo, ae, promoted=env.promoted, first=repo.promotion.order[:1] == [env_name]))
                if env.promoted and ae.release.pins is not None and not ae.release.pins.follows:
                    found, said = _chart_copy(repo, ae, known)
                    out.extend(found)
                    notes.extend(said)
            elif has_copy and not env.promoted:
                problem(f"{ae.chart_dir}/: {env_name} runs apps/{ae.app}/chart from main, not a copy", ae.chart_dir)
    return out, notes


def _release(repo: Repo, ae: AppEnv, *, promoted: bool, first: bool) -> list[Finding]:
    out = []
    release = ae.release
    assert release is not None
    file, data = release.file, release.data

    def problem(message: str, *path: str) -> None:
        out.append(Finding(CHECK, message, env=ae.env, app=ae.app, file=file, line=yamlio.line_of(data, *path)))

    # The file's form (keys, types, a tag that is not `latest`, a digest) is its schema's (gitops.model.schema):
    # here only what depends on where the environment stands in the promotion order.
    chart = release.chart
    if isinstance(chart, dict) and "revision" in chart:
        problem(
            "chart.revision is the release format from before promoted charts were copied into the environment: "
            + (
                f"{ae.env} runs apps/{ae.app}/chart on main, so its release names the image only"
                if not promoted
                else f"a promotion target names chart.commit and chart.tree of its copy {ae.chart_dir}/"
            )
            + " (docs/adr/0006-promoted-charts-are-copied-into-the-environment.md)",
            "chart",
            "revision",
        )
    elif not promoted and chart is not None:
        problem(
            f"`chart:` in {ae.env}, which runs apps/{ae.app}/chart on main"
            + (" (the first environment of the promotion order)" if first else "")
            + ": only a promotion target names the chart copy it runs",
            "chart",
        )
    elif promoted and chart is None:
        problem(
            f"`chart:` is missing: {ae.env} runs the copy {ae.chart_dir}/ and names where it came from,"
            f" chart.commit and chart.tree (`gitops promote` writes all three)",
        )
    return out


def _copies(repo: Repo, envs: list[str]) -> list[AppEnv]:
    """The apps of promotion targets that run a chart copy (``_chart_copy`` checks each)."""
    return [
        ae
        for env_name in envs
        if repo.environments[env_name].promoted
        for ae in repo.env_apps(env_name)
        if ae.release is not None and ae.release.pins is not None and not ae.release.pins.follows
    ]


def _chart_ids(repo: Repo, envs: list[str]) -> dict[str, str | None]:
    """Every git object id ``_chart_copy`` asks for, found with a few git processes, not four per app: the copies'
    trees, and each release's chart.commit and apps/<app>/chart there."""
    copies = [ae for ae in _copies(repo, envs) if isinstance(ae.release.chart, dict)]  # type: ignore[union-attr]
    known = repo.snapshot.tree_ids(
        [ae.chart_dir for ae in copies if repo.snapshot.exists(f"{ae.chart_dir}/Chart.yaml")]
    )
    specs = []
    for ae in copies:
        commit = str(ae.release.chart.get("commit"))  # type: ignore[union-attr]
        specs += [f"{commit}^{{commit}}", f"{commit}:apps/{ae.app}/chart"]
    return {**known, **git.object_ids(repo.root, specs)}


def _chart_copy(repo: Repo, ae: AppEnv, known: dict[str, str | None]) -> tuple[list[Finding], list[str]]:
    """The copy is byte for byte the chart the release names, and that chart is apps/<app>/chart at its commit."""
    assert ae.release is not None
    commit, tree = str(ae.release.chart["commit"]), str(ae.release.chart["tree"])
    file, data = ae.release.file, ae.release.data
    source = f"apps/{ae.app}/chart"

    def problem(message: str, *path: str, at: str = file) -> Finding:
        line = yamlio.line_of(data, *path) if path else None
        return Finding(CHECK, message, env=ae.env, app=ae.app, file=at, line=line)

    if not repo.snapshot.exists(f"{ae.chart_dir}/Chart.yaml"):
        return [problem(f"{ae.chart_dir}/Chart.yaml is missing: the release names a chart copy that is not there")], []
    out: list[Finding] = []
    copy_tree = known[ae.chart_dir] if ae.chart_dir in known else repo.snapshot.tree_id(ae.chart_dir)
    if copy_tree != tree:
        changed = git.changed_paths(repo.root, tree, copy_tree) if copy_tree else []
        listed = f"; differs in {', '.join(changed[:8])}{' …' if len(changed) > 8 else ''}" if changed else ""
        out.append(
            problem(
                f"{ae.chart_dir}/ is not the chart this release names (its tree is {copy_tree}, chart.tree is {tree}"
                f"{listed}): a promoted chart changes only by `gitops promote` or `gitops rollback`, never by hand",
                at=ae.chart_dir,
            )
        )
    spec = f"{commit}^{{commit}}"
    if (known[spec] if spec in known else git.rev_parse(repo.root, commit)) is None:
        if git.is_shallow(repo.root):
            note = (
                f"{ae.release_file}: chart.commit {commit[:12]} is not in this shallow clone, so whether {source} had"
                " this tree there is not checked (fetch the history to check it)"
            )
            return out, [note]
        out.append(problem(f"chart.commit {commit} names no commit in this repository", "chart", "commit"))
        return out, []
    spec = f"{commit}:{source}"
    at_commit = known[spec] if spec in known else git.object_id(repo.root, spec)
    if at_commit != tree:
        had = f"there it is {at_commit}" if at_commit else f"{source} does not exist there"
        out.append(
            problem(
                f"chart.tree {tree} is not {source} at chart.commit {commit[:12]} ({had}): the release names a chart"
                f" no commit of {source} had",
                "chart",
                "tree",
            )
        )
    return out, []


def sources(repo: Repo, applications: Iterable[Application]) -> list[Finding]:
    """Every source of this repository reads `main`, and each environment renders the chart it is meant to: the first
    environment apps/<app>/chart, a promotion target its own copy. So an environment is described at one revision,
    and a chart change on main reaches a promotion target only through a promotion."""
    out = []
    for a in applications:
        env = repo.environments.get(a.env)
        if env is None:
            continue
        want = f"{env.folder}/{a.app}/chart" if env.promoted else f"apps/{a.app}/chart"

        def problem(message: str, a: Application = a) -> None:
            out.append(Finding(CHECK, message, env=a.env, app=a.app, file=a.appset_file))

        for source in a.sources:
            if not isinstance(source, dict) or not same_repo(str(source.get("repoURL", ""))):
                continue
            revision = str(source.get("targetRevision", ""))
            if revision != TRACKED_BRANCH:
                problem(
                    f"Application {a.name} reads this repository at {revision or 'HEAD'!r}: every source of this"
                    f" repository reads {TRACKED_BRANCH!r}, so an environment is described at one revision"
                )
            path = str(source.get("path", "")).strip("/")
            if path and path != want:
                why = "its promoted copy" if env.promoted else f"the chart on {TRACKED_BRANCH}"
                problem(f"Application {a.name} renders {path}; {a.env} runs {why}, {want}")
    return out


def destinations(repo: Repo, applications: Iterable[Application]) -> list[Finding]:
    """Each environment's Applications deploy into the namespace its env.yaml declares."""
    out = []
    for a in applications:
        env = repo.environments.get(a.env)
        if env and env.namespace and a.destination_namespace != env.namespace:
            out.append(
                Finding(
                    CHECK,
                    f"Application {a.name} deploys to namespace {a.destination_namespace!r},"
                    f" but {env.file} says {env.namespace!r}",
                    env=a.env,
                    app=a.app,
                    file=a.appset_file,
                )
            )
    return out


def hostnames(repo: Repo, rendered: Iterable[Rendered]) -> list[Finding]:
    """A hostname belongs to one app in one environment: collected from rendered HTTPRoutes and Ingresses."""
    owners: dict[str, list[tuple[str, str, str, str]]] = defaultdict(list)
    for r in rendered:
        for doc in r.documents:
            for host in _hosts(doc.kind, doc.obj):
                owner = (r.env, r.app, doc.kind, doc.name)
                if owner not in owners[host]:
                    owners[host].append(owner)
    out = []
    for host, users in sorted(owners.items()):
        if len({(e, a) for e, a, _, _ in users}) < 2:
            continue
        first = users[0]
        for env, app, kind, name in users[1:]:
            file, line = _host_line(repo, env, app, host)
            out.append(
                Finding(
                    CHECK,
                    f"hostname {host} is also used by {first[0]}/{first[1]} ({first[2]}/{first[3]}):"
                    " hostnames are unique across environments",
                    env=env,
                    app=app,
                    file=file,
                    line=line,
                    kind=kind,
                    name=name,
                )
            )
    return out


def _hosts(kind: str, obj: dict) -> list[str]:
    spec = obj.get("spec") or {}
    if kind == "HTTPRoute" or kind == "GRPCRoute":
        return [str(h) for h in spec.get("hostnames") or []]
    if kind == "Ingress":
        hosts = [str(r["host"]) for r in spec.get("rules") or [] if isinstance(r, dict) and r.get("host")]
        return hosts + [
            str(h)
            for t in spec.get("tls") or []
            if isinstance(t, dict)
            for h in t.get("hosts") or []
            if str(h) not in hosts
        ]
    return []


def _host_line(repo: Repo, env: str, app: str, host: str) -> tuple[str, int | None]:
    ae = repo.app_envs.get((env, app))
    if ae is None:
        return "", None
    text = repo.read(ae.values_file) or ""
    for n, line in enumerate(text.splitlines(), 1):
        if host in line:
            return ae.values_file, n
    return ae.values_file, None
