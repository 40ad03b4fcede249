"""The GitOps loop, end to end: what CI and a developer do in git, and what the clusters must do in response.

Steps (each commit is pushed to the local GitHub, published for Argo CD, and waited for with a bound):

1. bootstrap   `kubectl apply -f clusters/<cluster>/root.yaml` on every cluster; everything turns Synced and
               Healthy, each ApplicationSet generates exactly the Applications `gitops render` lists, and every
               rendered object is live as rendered (Deployments rolled out to their replicas).
2. bump        `gitops bump` a new image into the first environment (as the build workflow does): it rolls out
               there; the next environment is untouched.
3. chart       a chart change at HEAD reaches the first environment (it follows main) and not the next (it runs
               its promoted copy).
4. incident    with that chart change still unpromoted on main, the next environment's overlay raises the
               HorizontalPodAutoscaler's minReplicas: it takes effect there alone — same image, same chart, live.
5. promote     `gitops promote`, merged: the next environment rolls out the first one's image and chart, and keeps
               its raised minReplicas; then a second bump and a second promotion.
6. rollback    `gitops rollback`: the next environment returns to the release of the earlier promotion, then to its
               first recorded release; its overlay (the raised minReplicas) stays as it is on main.
7. project     an Application of project `apps` aimed at kube-system is refused by the AppProject.
"""

from __future__ import annotations

import hashlib
import io
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import yaml

from gitops.e2e import checks
from gitops.e2e.argocd import NAMESPACE, Settings, module_manifests, version
from gitops.e2e.cluster import APP, LocalCluster
from gitops.e2e.expect import Rendered, render
from gitops.e2e.gitrepo import LocalGit
from gitops.e2e.kube import wait_for
from gitops.e2e.substitutions import Substitutions
from gitops.errors import GitopsError
from gitops.yamlio import load_fast

Say = Callable[[str], None]
# The pod annotation the chart step adds: how the live objects tell whether an environment runs that chart change.
CHART_MARK = "e2e.gitops.local/chart-change"
POLL = 2.0  # seconds between checks of the clusters: two cores run two control planes and two Argo CDs
NUDGE_EVERY = 15.0  # seconds between refresh requests for lagging Applications, as a repeated webhook would


class ScenarioError(GitopsError):
    pass


@dataclass
class Timings:
    rows: list[tuple[str, float]] = field(default_factory=list)

    def add(self, label: str, seconds: float) -> float:
        self.rows.append((label, seconds))
        return seconds

    def table(self) -> str:
        width = max(len(label) for label, _ in self.rows)
        return "\n".join(f"  {label:<{width}}  {seconds:6.1f}s" for label, seconds in self.rows)


@dataclass
class Layout:
    """Read from the repo: which cluster hosts which environment, the promotion order, the app exercised."""

    clusters: dict[str, list[str]]  # cluster -> its environments
    env_cluster: dict[str, str]
    order: list[str]
    app: str

    @classmethod
    def read(cls, work: Path) -> Layout:
        order = (yaml.safe_load((work / "environments/promotion.yaml").read_text()) or {}).get("order") or []
        if len(order) < 2:
            raise ScenarioError("environments/promotion.yaml: `order` must list at least two environments")
        env_cluster = {}
        for env in order:
            env_file = work / "environments" / env / "env.yaml"
            cluster = (yaml.safe_load(env_file.read_text()) or {}).get("cluster") if env_file.exists() else None
            if not cluster or not (work / "clusters" / cluster / "root.yaml").exists():
                raise ScenarioError(
                    f"{env_file.relative_to(work)}: `cluster` must name a folder of clusters/ with a root.yaml"
                )
            env_cluster[env] = cluster
        clusters: dict[str, list[str]] = {}
        for env, cluster in env_cluster.items():
            clusters.setdefault(cluster, []).append(env)
        apps = sorted(p.parent.name for p in (work / "environments" / order[0]).glob("*/release.yaml"))
        if not apps:
            raise ScenarioError(f"environments/{order[0]}/ has no <app>/release.yaml to exercise")
        return cls(clusters, env_cluster, order, apps[0])


class Scenario:
    def __init__(self, state: Path, source: Path, say: Say, include_work_tree: bool, timeout: float) -> None:
        self.state = state
        self.source = source
        self.say = say
        self.include_work_tree = include_work_tree
        self.timeout = timeout
        self.git = LocalGit(state / "git")
        self.clusters: dict[str, LocalCluster] = {}
        self.timings = Timings()
        self.renders = 0
        self.bumps = 0
        self.base_tag = ""

    # -- the run ---------------------------------------------------------------------------------------------------

    def run(self) -> Timings:
        start = time.monotonic()
        head = self.git.create(self.source, self.include_work_tree)
        self.layout = Layout.read(self.git.work)
        self.subs = Substitutions(self.git.url)
        self.published = self.git.publish(self.subs, "e2e: publish for Argo CD")
        first, second = self.layout.order[0], self.layout.order[1]
        hosted = "; ".join(f"{c}: {' '.join(e)}" for c, e in self.layout.clusters.items())
        self.say(
            f"gitops e2e: Argo CD {version()} as local processes; {len(self.layout.clusters)} clusters ({hosted}); "
            f"source {self.source} at {head[:12]}" + (" + uncommitted work tree" if self.include_work_tree else "")
        )
        self.say("substitutions (the published config differs from the commit only in these):")
        for note in self.subs.notes:
            self.say(f"  - {note}")

        self._start_clusters()
        self._bootstrap()

        app = self.layout.app
        bump = partial(self._bump, first, app)
        promote = partial(self._gitops, "promote", "--from", first, "--to", second, "--app", app)
        rollback = partial(self._gitops, "rollback", "--env", second, "--app", app)
        promoted = partial(self._same_images_as, second, first)
        initial = self._templates(second)
        self._step(f"bump: `gitops bump` a new {app} image into {first}", bump, {first})
        self._step(f"chart: a change to apps/{app}/chart at HEAD", partial(self._chart_change, app), {first})
        raised = self._step(
            f"incident: {second}'s overlay raises {app}'s minReplicas on main, beside the unpromoted chart change",
            partial(self._raise_min_replicas, second, app),
            {second},
            lambda: self._runs(second, initial, "the same image and chart as before the overlay change"),
        )
        keeps = partial(self._min_replicas, second, raised, "the overlay's minReplicas, as on main")
        self._step(
            f"promote: `gitops promote --from {first} --to {second}`, merged",
            promote,
            {second},
            lambda: (promoted(), self._has_chart_change(second, True), keeps()),
        )
        earlier = self._templates(second)
        # A second release down the same path, so that the rollback has an earlier promotion to return to.
        self._step(f"bump: another {app} image into {first}", bump, {first})
        self._step(f"promote: that image to {second}, merged", promote, {second}, promoted)
        self._step(
            f"rollback: `gitops rollback --env {second} --app {app}`",
            rollback,
            {second},
            lambda: (self._runs(second, earlier, "the release of its earlier promotion"), keeps()),
        )
        self._step(
            f"rollback: `gitops rollback --env {second} --app {app} --steps 1`, to its first recorded release",
            partial(rollback, "--steps", "1"),
            {second},
            lambda: (self._runs(second, initial, "the release it ran before its first promotion"), keeps()),
        )
        self._project_restriction(first, app)
        self.timings.add("total", time.monotonic() - start)
        return self.timings

    def stop(self) -> None:
        """Stop every cluster, even if stopping one fails; then report the first failure."""
        errors = []
        for cluster in self.clusters.values():
            try:
                cluster.stop()
            except Exception as e:  # keep stopping the others
                errors.append(e)
        if errors:
            raise errors[0]

    # -- clusters --------------------------------------------------------------------------------------------------

    def _settings(self, cluster: str) -> Settings:
        files = [
            self.git.work / "clusters/argocd-values.yaml",
            self.git.work / "clusters" / cluster / "argocd-values.yaml",
        ]
        return Settings.from_values([yaml.safe_load(f.read_text()) for f in files if f.exists()])

    def _start_clusters(self) -> None:
        t0 = time.monotonic()
        for name in self.layout.clusters:
            self.clusters[name] = LocalCluster(name, self.state / name, self._settings(name))
        for name, cluster in self.clusters.items():
            t = time.monotonic()
            cluster.start_control_plane()
            self.say(
                f"[{time.monotonic() - t:5.1f}s] {name}: etcd, kube-apiserver, controller-manager, scheduler, "
                f"kwok with 2 fake nodes"
            )
        self.timings.add("control planes start", time.monotonic() - t0)

        t0 = time.monotonic()
        manifests = module_manifests()
        extra = self._unclaimed_crds()
        for cluster in self.clusters.values():
            cluster.install_argocd(manifests, extra)
        for cluster in self.clusters.values():
            cluster.argocd.spawn()
        for cluster in self.clusters.values():
            cluster.argocd.wait_ready()
        overrides = next(iter(self.clusters.values())).settings.overrides
        self.say(
            f"[{time.monotonic() - t0:5.1f}s] Argo CD ready on every cluster: redis, repo-server, "
            f"application-controller, applicationset-controller"
        )
        self.say("  settings from clusters/argocd-values.yaml, except: " + "; ".join(overrides))
        if extra:
            self.say(
                f"  CRDs installed directly (pinned, rendered against by `gitops render`, no Application installs "
                f"them here): {', '.join(c['metadata']['name'] for c in extra)}"
            )
        self.say(
            "  metrics.k8s.io: served by the e2e's stand-in for the metrics-server AKS manages (APIService "
            "v1beta1.metrics.k8s.io → kube-system/e2e-standin-metrics-server)"
        )
        self.timings.add("Argo CD ready", time.monotonic() - t0)

    def _unclaimed_crds(self) -> list[dict]:
        from gitops.schemas import crd_files

        claimed = self.subs.claimed_crds()
        docs = [load_fast(p.read_text()) for p in crd_files()]
        argo = {"applications.argoproj.io", "applicationsets.argoproj.io", "appprojects.argoproj.io"}
        return [d for d in docs if d["metadata"]["name"] not in claimed | argo]

    def _check_alive(self) -> None:
        for cluster in self.clusters.values():
            cluster.check_alive()

    # -- steps -----------------------------------------------------------------------------------------------------

    def _bootstrap(self) -> None:
        t0 = time.monotonic()
        for name, cluster in self.clusters.items():
            root = self._served_file(f"clusters/{name}/root.yaml")
            applied = cluster.bootstrap(root)
            self.say(f"  {name}: applied clusters/{name}/root.yaml ({', '.join(applied)})")
        self.expected = {env: self._render(env) for env in self.layout.order}
        self._converge("bootstrap", self.layout.order, timeout=2 * self.timeout)
        for env, rendered in self.expected.items():
            self.say(
                f"  {env}: ApplicationSet {rendered.appset} generated {', '.join(sorted(rendered.applications))} "
                f"as rendered; images {self._images(env)}"
            )
        took = self.timings.add("bootstrap → all Synced/Healthy", time.monotonic() - t0)
        self.say(f"[{took:5.1f}s] bootstrap: every Application Synced/Healthy on every cluster, workloads as rendered")

    def _step(
        self, title: str, change: Callable[[], object], changes: set[str], then: Callable[[], object] | None = None
    ) -> object:
        """Commit ``change``, publish it, and wait until every environment runs what `gitops render` says.

        ``changes``: the environments whose rendered manifests must change; every other one must render the same
        and keep its Deployments' generations (nothing rolled out there).
        """
        before = self.expected
        untouched = [env for env in self.layout.order if env not in changes]
        generations = {env: self._generations(env) for env in untouched}
        result = change()
        pushed = time.monotonic()
        sha = self.git.push()
        self.published = self.git.publish(self.subs, f"e2e: publish {sha[:12]}")
        for cluster in self.clusters.values():
            cluster.refresh()
        self.expected = {env: self._render(env) for env in self.layout.order}
        for env in self.layout.order:
            same = self.expected[env].manifests == before[env].manifests
            if env in changes and same:
                raise ScenarioError(
                    f"{title}: `gitops render {env}` is the same before and after the commit {sha[:12]}"
                )
            if env not in changes and not same:
                raise ScenarioError(f"{title}: the commit {sha[:12]} changes `gitops render {env}`, expected no change")
        self._converge(title, self.layout.order)
        for env in untouched:
            now = self._generations(env)
            if now != generations[env]:
                raise ScenarioError(f"{title}: {env}'s Deployments rolled out (generations {generations[env]} → {now})")
        if then:
            then()
        took = time.monotonic() - pushed
        touched = ", ".join(sorted(changes))
        self.say(
            f"[{took:5.1f}s] {title}: {touched} Synced/Healthy at {sha[:12]}, images {self._images(*changes)}"
            + (f"; {', '.join(untouched)} untouched" if untouched else "")
        )
        label = title.split(":")[0]
        count = sum(1 for row, _ in self.timings.rows if row.split(":")[0].split(" #")[0] == label)
        self.timings.add(f"{label}{f' #{count + 1}' if count else ''}: commit → Synced/Healthy", took)
        return result

    def _converge(self, title: str, envs: list[str], timeout: float | None = None) -> float:
        """Wait until every cluster's Applications are Synced/Healthy at the published commit and every env is
        live as rendered; nudges Argo CD every few seconds, as repeated webhooks would."""
        last_nudge = [time.monotonic()]

        def problems() -> list[str]:
            nudge = time.monotonic() - last_nudge[0] > NUDGE_EVERY
            if nudge:
                last_nudge[0] = time.monotonic()
            out = []
            for name, cluster in self.clusters.items():
                lagging = checks.converged(cluster, self.published)
                out += [f"{name}: {p}" for p in lagging]
                if nudge and lagging:
                    cluster.refresh(
                        [
                            p.split(":", 1)[0].removeprefix("Application ")
                            for p in lagging
                            if p.startswith("Application ")
                        ]
                    )
            for env in envs:
                cluster = self.clusters[self.layout.env_cluster[env]]
                out += [f"{env}: {p}" for p in checks.generated_as_rendered(cluster, self.expected[env])]
                out += [f"{env}: {p}" for p in checks.workloads_as_rendered(cluster, self.expected[env])]
            return out

        def describe() -> str:
            found = problems()
            lines = [f"  - {p}" for p in found[:15]]
            for name, cluster in self.clusters.items():
                for app in cluster.applications():
                    if any(f"Application {app}:" in p for p in found):
                        lines.append(f"  {name}/{app}{checks.events(cluster, app)}")
            return "\n".join(lines)

        _, took = wait_for(
            f"{title}: Argo CD to converge",
            lambda: not problems(),
            timeout or self.timeout,
            describe,
            interval=POLL,
            alive=self._check_alive,
        )
        return took

    def _project_restriction(self, env: str, app: str) -> None:
        cluster = self.clusters[self.layout.env_cluster[env]]
        name = "e2e-not-permitted"
        t0 = time.monotonic()
        cluster.kube.apply(
            {
                "apiVersion": APP,
                "kind": "Application",
                "metadata": {"name": name, "namespace": NAMESPACE},
                "spec": {
                    "project": "apps",
                    "source": {"repoURL": self.git.url, "targetRevision": "main", "path": f"apps/{app}/chart"},
                    "destination": {"server": "https://kubernetes.default.svc", "namespace": "kube-system"},
                    "syncPolicy": {"automated": {"prune": True, "selfHeal": True}},
                },
            }
        )
        message, _ = wait_for(
            f"AppProject apps to refuse Application {name} (destination kube-system)",
            lambda: checks.refused(cluster, name),
            self.timeout,
            lambda: checks.describe_app(cluster.application(name) or {}) + checks.events(cluster, name),
            alive=self._check_alive,
        )
        time.sleep(2)  # long enough for a sync it should never start
        deployed = cluster.kube.list("apps/v1", "Deployment", "kube-system")
        if deployed:
            raise ScenarioError(
                f"Application {name} was refused but deployed {[d['metadata']['name'] for d in deployed]}"
            )
        cluster.kube.delete(APP, "Application", name, NAMESPACE)
        took = self.timings.add("project: refusal", time.monotonic() - t0)
        self.say(f"[{took:5.1f}s] project: Application {name} (project apps → kube-system) refused: {message}")

    # -- changes ---------------------------------------------------------------------------------------------------

    def _gitops(self, *args: str) -> None:
        proc = subprocess.run(
            [sys.executable, "-m", "gitops", *args], cwd=self.git.work, capture_output=True, text=True
        )
        if proc.returncode != 0:
            raise ScenarioError(f"`gitops {' '.join(args)}` failed:\n{(proc.stderr or proc.stdout).strip()}")
        for line in proc.stdout.strip().splitlines()[:6]:
            self.say(f"    {line}")

    def _bump(self, env: str, app: str) -> None:
        release = yaml.safe_load((self.git.work / "environments" / env / app / "release.yaml").read_text())
        image = release["image"]
        self.bumps += 1
        self.base_tag = self.base_tag or str(image["tag"])
        tag = f"{self.base_tag}-e2e.{self.bumps}"
        digest = "sha256:" + hashlib.sha256(f"{app}:{tag}".encode()).hexdigest()
        self._gitops("bump", "--env", env, "--app", app, "--image", f"{image['repository']}:{tag}", "--digest", digest)

    def _raise_min_replicas(self, env: str, app: str) -> dict[str, int]:
        """What ops do in an incident: one more replica at minimum, in the environment's own overlay, on main."""
        from gitops import yamlio

        rel = f"environments/{env}/{app}/values.yaml"
        data = yamlio.round_trip().load(self.git.read(rel))
        autoscaling = data.get("autoscaling") if isinstance(data, dict) else None
        if not isinstance(autoscaling, dict) or not autoscaling.get("enabled"):
            raise ScenarioError(f"{rel}: the incident step raises autoscaling.minReplicas; autoscaling is not on there")
        autoscaling["minReplicas"] = int(autoscaling.get("minReplicas", 1)) + 1
        out = io.StringIO()
        yamlio.round_trip().dump(data, out)
        self.git.write(rel, out.getvalue())
        self.git.commit_all(f"{env}: raise {app}'s minReplicas to {autoscaling['minReplicas']} (incident)")
        return {key: autoscaling["minReplicas"] for key in self._minimums(env)}

    def _chart_change(self, app: str) -> None:
        """A one-line change to the chart's defaults that shows in every pod template: a pod annotation."""
        rel = f"apps/{app}/chart/values.yaml"
        text = self.git.read(rel)
        new, n = re.subn(r"^podAnnotations: \{\}$", f'podAnnotations:\n  {CHART_MARK}: "1"', text, flags=re.M)
        if n != 1:
            raise ScenarioError(
                f"{rel}: the chart step turns `podAnnotations: {{}}` into one annotation; that line is gone"
            )
        self.git.write(rel, new)
        self.git.commit_all(f"{app} chart: annotate pods (e2e chart change)")

    # -- helpers ---------------------------------------------------------------------------------------------------

    def _render(self, env: str) -> Rendered:
        self.renders += 1
        out = self.state / "renders" / f"{self.renders:02d}-{env}"
        return render(self.git.work, env, self.git.github_head(), out, self.git.url)

    def _served_file(self, rel: str) -> str:
        from gitops.e2e.gitrepo import run_git

        return run_git(self.git.served, "show", f"{self.published}:{rel}")

    def _images(self, *envs: str) -> dict[str, list[str]]:
        out = {}
        for env in envs:
            cluster = self.clusters[self.layout.env_cluster[env]]
            out.update(checks.deployment_images(cluster, self.expected[env]))
        return out

    def _generations(self, env: str) -> dict[str, int]:
        return checks.deployment_generations(self.clusters[self.layout.env_cluster[env]], self.expected[env])

    def _templates(self, env: str) -> dict[str, dict]:
        return checks.pod_templates(self.clusters[self.layout.env_cluster[env]], self.expected[env])

    def _minimums(self, env: str) -> dict[str, int]:
        return checks.hpa_minimums(self.clusters[self.layout.env_cluster[env]], self.expected[env])

    def _runs(self, env: str, want: dict[str, dict], what: str) -> None:
        """The live Deployments run exactly ``want`` (images and pod template annotations): ``what``."""
        have = self._templates(env)
        if have != want:
            raise ScenarioError(f"expected {env} to run {what}: {want}, found {have}")

    def _min_replicas(self, env: str, want: dict[str, int], what: str) -> None:
        have = self._minimums(env)
        if have != want:
            raise ScenarioError(f"expected {env}'s HorizontalPodAutoscalers at {what}: {want}, found {have}")

    def _has_chart_change(self, env: str, present: bool) -> None:
        marked = {k: CHART_MARK in t["annotations"] for k, t in self._templates(env).items()}
        if not marked or any(v != present for v in marked.values()):
            raise ScenarioError(f"expected the chart change {'in' if present else 'not in'} {env}'s pods: {marked}")

    def _same_images_as(self, env: str, source: str) -> None:
        self._same_images(env, self._images(source), f"{env} runs what {source} runs")

    def _same_images(self, env: str, want: dict[str, list[str]], what: str) -> None:
        have = self._images(env)
        if sorted(map(tuple, have.values())) != sorted(map(tuple, want.values())):
            raise ScenarioError(f"expected {what}: {want}, found {have}")
