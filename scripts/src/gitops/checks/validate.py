"""`gitops validate`: every check, in order, never stopping at the first problem.

1. yamllint on the repo's YAML (Helm templates excluded) with ``.yamllint``;
2. per app and environment: the chart's ``values.schema.json`` (helm checks it while rendering) and
   ``helm lint --strict``, both with the environment's overlay and the release's image; the same for each platform
   Application of an upstream chart (``gitops.render.platform``), whose values are checked against the chart's
   default values where it has no schema (``chart-values``) — a chart that cannot be had here is named in a note;
3. kubeconform ``-strict`` on everything rendered (apps of every environment, the ApplicationSets and the
   Applications they generate, ``platform/``, ``clusters/*/``) against the offline schemas — once, in one process;
4. repository rules (``gitops.checks.rules``);
5. with ``--live``: a server-side dry run of everything through a real API server with the platform's policies.

Results are kept between runs (``gitops.checks.cache``): a render with its lint findings, a document's kubeconform
verdict and a file's yamllint findings are taken from the cache when nothing they depend on has changed, so after a
change to one app only that app is rendered and checked again; the findings are the same either way.

Scope: with no environment named, everything. Naming environments validates those environments (their files, the
charts they render, the repository rules about them); ``platform/`` and ``clusters/`` are checked when nothing is
named, or when the changed files given touch them.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from gitops import model as repomodel
from gitops import yamlio
from gitops.checks import chartvalues, helmlint, kubeconform, live, rules, yamllint
from gitops.checks.cache import Store, default_root
from gitops.errors import GitopsError
from gitops.findings import Finding
from gitops.render import platform as platform_apps
from gitops.render.documents import Document, Rendered, chunks
from gitops.render.helm import Renderer, workers, workspace
from gitops.render.plain import render_plain

CHECKS = (
    "yamllint",
    "yaml",
    "schema",
    "applicationset",
    "values-schema",
    "chart-values",
    "helm-lint",
    "render",
    "kubeconform",
    "repo-rules",
    "live",
)


@dataclass
class Scope:
    envs: list[str]
    platform: bool  # platform/ and clusters/*/
    whole_repo: bool

    @classmethod
    def everything(cls, model: repomodel.Repo) -> Scope:
        return cls(list(model.environments), True, True)


@dataclass
class Report:
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # checks that could not run here, each said by name
    checks: list[str] = field(default_factory=list)
    stats: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.findings


def scope_for(model: repomodel.Repo, envs: list[str]) -> Scope:
    if not envs:
        return Scope.everything(model)
    unknown = [e for e in envs if e not in model.environments]
    if unknown:
        raise GitopsError(f"no environment {', '.join(map(repr, unknown))}; known: {', '.join(model.environments)}")
    return Scope(list(dict.fromkeys(envs)), False, False)


def scope_for_changes(model: repomodel.Repo, files: list[str]) -> Scope | None:
    """The environments (and platform) a set of changed files can affect; None when nothing needs validating."""
    envs: set[str] = set()
    platform = False
    for f in files:
        parts = Path(f).as_posix().split("/")
        if parts[0] == "environments" and len(parts) > 2 and parts[1] in model.environments:
            envs.add(parts[1])
        elif parts[0] == "apps":
            # A chart on main is what the first environment runs; promotion targets run their own copies.
            envs.update(e.name for e in model.environments.values() if not e.promoted)
        elif parts[0] == "environments":
            envs.update(model.environments)  # promotion.yaml: the order decides what every environment is
        elif parts[0] in ("platform", "clusters"):
            platform = True
        elif f == yamllint.CONFIG_FILE:
            envs.update(model.environments)
            platform = True
    if not envs and not platform:
        return None
    everything = platform and envs == set(model.environments)
    return Scope([e for e in model.environments if e in envs], platform, everything)


def validate(
    root: Path,
    scope_envs: list[str] | None = None,
    *,
    changed: list[str] | None = None,
    live_check: bool = False,
    kubeconfig: Path | None = None,
    cache: bool = True,
) -> Report:
    """Every check in ``scope_envs`` (or what ``changed`` files affect). With ``cache`` (the default), renders and
    check results whose inputs are unchanged since an earlier run are taken from ``gitops.checks.cache``."""
    started = time.monotonic()
    store = Store(default_root()) if cache else None
    model = repomodel.load(root)
    if changed is not None:
        scope = scope_for_changes(model, changed)
        if scope is None:
            return Report(checks=[], stats={"environments": 0})
    else:
        scope = scope_for(model, scope_envs or [])
    report = Report()
    found: list[Finding] = []

    # 1. yamllint, in worker processes while helm renders (reported first all the same)
    under = None if scope.whole_repo else _lint_paths(model, scope)
    with workspace() as work, ProcessPoolExecutor(max_workers=workers()) as lint_pool:
        linting = yamllint.start(model.snapshot, under, lint_pool, store)
        report.checks.append("yamllint")
        # The model checked release.yaml, env.yaml and promotion.yaml against their schemas while loading.
        report.checks.append("schema")
        found += [p for p in model.problems if not p.env or p.env in scope.envs]

        # 2. values schema + helm lint, and the renders everything after needs
        renderer = Renderer(model, work)
        envs = [model.environments[e] for e in scope.envs]
        plain = _plain(model, scope)
        with ThreadPoolExecutor(max_workers=1) as beside:  # the platform's charts render while the apps' do
            platform_renders = beside.submit(
                platform_apps.render_platform,
                renderer,
                plain,
                helmlint.alongside,
                lambda job, found: chartvalues.check_platform_job(model, job, found),
                store,
            )
            results = renderer.render_envs(envs, alongside=helmlint.alongside, cache=store)
            platform = platform_renders.result()
        report.checks += ["values-schema", "helm-lint"]
        if platform:
            report.checks.append("chart-values")
        report.notes += platform_apps.notes(platform)
        for r in results:
            found += r.all_problems()
        for p in plain + platform:
            found += p.problems

        found += yamllint.collect(linting)

        # 3. kubeconform, once over everything
        targets = _kubeconform_targets(model, results, plain)
        targets += [kubeconform.Target(d, app=x.title) for x in platform for d in x.documents]
        found += kubeconform.run(targets, work, store)
        report.checks.append("kubeconform")

        # 4. repository rules
        if scope.whole_repo or changed is not None:
            found += rules.promotion(model)
        release_findings, release_notes = rules.releases(model, scope.envs)
        found += release_findings
        report.notes += release_notes
        applications = [a for r in results for a in r.applications]
        found += rules.sources(model, applications)
        found += rules.destinations(model, applications)
        found += rules.hostnames(model, [x for r in results for x in r.rendered])
        report.checks.append("repo-rules")

        # 5. the API server
        if live_check:
            live_targets, setup = _live_targets(results, plain, model)
            live_targets += [
                live.Target(d, app=x.title, namespace=x.job.namespace) for x in platform if x.job for d in x.documents
            ]
            with live.control_plane(kubeconfig) as kc:
                found += live.run(kc, live_targets, setup, work)
            report.checks.append("live")

    report.findings = _dedupe(found)
    report.stats = {
        "environments": len(scope.envs),
        "applications": sum(len(r.applications) for r in results),
        "objects": len(targets),
        **(store.stats() if store else {}),
    }
    report.seconds = time.monotonic() - started
    return report


def _lint_paths(model: repomodel.Repo, scope: Scope) -> list[str]:
    paths = [f"environments/{e}" for e in scope.envs] + [repomodel.PROMOTION_FILE]
    paths += [f"apps/{a}/chart" for a in model.apps]
    if scope.platform:
        paths += ["platform", "clusters"]
    return paths


def _plain(model: repomodel.Repo, scope: Scope) -> list[Rendered]:
    if not scope.platform:
        return []
    folders = []
    if model.snapshot.is_dir("platform"):
        folders.append("platform")
    folders += [f"clusters/{c}" for c in model.snapshot.children("clusters")]
    return [render_plain(model, f) for f in folders]


def _kubeconform_targets(model, results, plain) -> list[kubeconform.Target]:
    targets = []
    for r in results:
        env = model.environments[r.env]
        appset = model.read(env.appset_file)
        if appset is not None:
            for line, chunk in chunks(appset):
                try:
                    obj = yamlio.load_fast(chunk)
                except Exception:  # noqa: S112 - a YAML error here is already reported (yamllint, the expansion)
                    continue
                if isinstance(obj, dict):
                    targets.append(kubeconform.Target(Document(chunk, obj, env.appset_file, line), r.env))
        for a in r.applications:
            # JSON is YAML, and writing it is many times faster than writing block YAML (a hundred apps: 0.3 s).
            doc = Document(json.dumps(a.manifest, default=str), a.manifest, a.appset_file)
            targets.append(kubeconform.Target(doc, a.env, a.app))
        for x in r.rendered:
            targets += [kubeconform.Target(d, x.env, x.app) for d in x.documents]
    for p in plain:
        targets += [kubeconform.Target(d) for d in p.documents]
    return targets


def _live_targets(results, plain, model) -> tuple[list[live.Target], list[live.Target]]:
    targets, setup = [], []
    for r in results:
        for x in r.rendered:
            ns = x.job.namespace if x.job else ""
            targets += [live.Target(d, x.env, x.app, ns) for d in x.documents]
    for p in plain:
        for d in p.documents:
            t = live.Target(d)
            (setup if d.kind in ("Namespace", *live.VAP_KINDS) else targets).append(t)
    if not plain:
        # Scoped to environments: their namespaces and the policies still have to be in place.
        everything = _plain(model, Scope([], True, True))
        setup = [live.Target(d) for p in everything for d in p.documents if d.kind in ("Namespace", *live.VAP_KINDS)]
    return targets, setup


def _dedupe(found: list[Finding]) -> list[Finding]:
    """One report per problem: the YAML parser and yamllint (or render and rules) may see the same thing."""
    parse_errors = {
        f.file
        for f in found
        if f.check == "yamllint" and ("syntax error" in f.message or "key-duplicates" in f.message)
    }
    # A missing overlay is one problem: the repo rule names it, helm's "value file does not exist" would repeat it.
    missing = {f.file for f in found if f.check == "repo-rules" and f.message.startswith("missing values.yaml")}
    seen: set[tuple] = set()
    out = []
    for f in sorted(found, key=lambda f: CHECKS.index(f.check) if f.check in CHECKS else 99):
        if f.check == "yaml" and f.file in parse_errors:
            continue
        if f.check == "render" and f.file in missing and "does not exist" in f.message:
            continue
        if f.check == "render" and any(f"/{path}:" in f.message for path in parse_errors):
            continue  # helm could not read a values file yamllint already reported as unparsable
        key = (f.env, f.app, f.file, f.line, f.kind, f.name, f.message)
        if key in seen:
            continue
        seen.add(key)
        out.append(f)
    return out


# -- output ----------------------------------------------------------------------------------------------------


def format_text(report: Report) -> str:
    lines = []
    by_check: dict[str, list[Finding]] = {}
    for f in report.findings:
        by_check.setdefault(f.check, []).append(f)
    for check, items in by_check.items():
        lines.append(f"{check}: {len(items)} problem{'s' if len(items) != 1 else ''}")
        for f in sorted(items, key=lambda f: (f.env, f.app, f.file, f.line or 0, f.kind, f.name)):
            lines.append(f"  {f}")
        lines.append("")
    s = report.stats
    scope = (
        f"{s.get('environments', 0)} environment(s), {s.get('applications', 0)} application(s),"
        f" {s.get('objects', 0)} object(s)"
    )
    ran = ", ".join(report.checks) or "none"
    lines += [f"note: {n}" for n in report.notes]
    if report.findings:
        n, m = len(report.findings), len(by_check)
        lines.append(
            f"{n} problem{'s' if n != 1 else ''} in {m} check{'s' if m != 1 else ''}"
            f" ({scope}; ran: {ran}; {report.seconds:.1f}s)"
        )
    elif not report.checks:
        lines.append("nothing to validate for these files")
    else:
        lines.append(f"no problems ({scope}; ran: {ran}; {report.seconds:.1f}s)")
    return "\n".join(lines)


def format_json(report: Report) -> dict:
    return {
        "ok": report.ok,
        "problems": [f.to_dict() for f in report.findings],
        "notes": report.notes,
        "checks": report.checks,
        "stats": report.stats,
        "seconds": round(report.seconds, 3),
    }
