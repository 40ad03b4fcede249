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
7. gate        the promotion gate, with Argo CD's notifications controller and a GitHub API stand-in: an image that
               never gets ready makes the first environment Degraded and sends no `dev-healthy`; the next image
               sends exactly one, naming the app and the synced revision, and the promote workflow's own command,
               given that dispatch, promotes exactly that release to the next environment.
8. project     an Application of project `apps` aimed at kube-system is refused by the AppProject.

Every sync operation Argo CD runs is watched: the failed attempts of the bootstrap and of the later steps are counted
(`e2e.syncs`), and a bootstrap must need none.
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

from gitops.errors import GitopsError
from gitops.yamlio import load_fast
from gitops_testing.e2e import checks, workflow
from gitops_testing.e2e.argocd import NAMESPACE, Settings, module_manifests, version
from gitops_testing.e2e.cluster import APP, LocalCluster
from gitops_testing.e2e.expect import Rendered, render
from gitops_testing.e2e.github import Dispatch, GitHubAPI, full_name
from gitops_testing.e2e.gitrepo import LocalGit, run_git
from gitops_testing.e2e.kube import wait_for
from gitops_testing.e2e.notifications import Notifications
from gitops_testing.e2e.substitutions import Substitutions

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
    counts: list[tuple[str, int]] = field(default_factory=list)

    def add(self, label: str, seconds: float) -> float:
        self.rows.append((label, seconds))
        return seconds

    def count(self, label: str, n: int) -> int:
        self.counts.append((label, n))
        return n

    def table(self) -> str:
        width = max(len(label) for label, _ in [*self.rows, *self.counts])
        return "\n".join(
            [f"  {label:<{width}}  {seconds:6.1f}s" for label, seconds in self.rows]
            + [f"  {label:<{width}}  {n:6d}" for label, n in self.counts]
        )


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
        self.github: GitHubAPI | None = None
        self.unpullable: dict[str, str] = {}  # the image the gate step releases and no registry has
        self.failed_syncs_counted = 0
        self.dispatched_commit = ""

    # -- the run ---------------------------------------------------------------------------------------------------

    def run(self) -> Timings:
        start = time.monotonic()
        head = self.git.create(self.source, self.include_work_tree)
        self.layout = Layout.read(self.git.work)
        self.subs = Substitutions(self.git.url)
        self.published = self.git.publish(self.subs, "e2e: publish for Argo CD")
        first, second = self.layout.order[0], self.layout.order[1]
        self._prepare_gate(first, self.layout.app)
        hosted = "; ".join(f"{c}: {' '.join(e)}" for c, e in self.layout.clusters.items())
        self.say(
            f"gitops-e2e: Argo CD {version()} as local processes; {len(self.layout.clusters)} clusters ({hosted}); "
            f"source {self.source} at {head[:12]}" + (" + uncommitted work tree" if self.include_work_tree else "")
        )
        self.say("substitutions (the published config differs from the commit only in these):")
        for note in self.subs.notes:
            self.say(f"  - {note}")

        self._start_clusters()
        self._bootstrap()
        self._failed_syncs("bootstrap", required_zero=True)

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
        # That release's chart renders fewer objects than the one promoted since: prod never prunes by itself, so
        # its Application waits OutOfSync for them until ops sync it with prune, as `gitops rollback` tells them to.
        self._step(
            f"rollback: `gitops rollback --env {second} --app {app} --steps 1`, to its first recorded release, then a "
            "sync with prune",
            partial(rollback, "--steps", "1"),
            {second},
            lambda: (self._runs(second, initial, "the release it ran before its first promotion"), keeps()),
            prune_by_hand=True,
        )
        self._gate(first, second, app)
        self._project_restriction(first, app)
        self._failed_syncs("the steps after the bootstrap")
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
        if self.github is not None:
            self.github.stop()
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
            self.clusters[name] = LocalCluster(
                name, self.state / name, self._settings(name), self._notifications(name), self._unpullable_refs()
            )
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
        notifying = [name for name, c in self.clusters.items() if c.argocd.notifying]
        self.say(
            f"[{time.monotonic() - t0:5.1f}s] Argo CD ready on every cluster: redis, repo-server, "
            f"application-controller, applicationset-controller"
            + (f"; notifications-controller on {', '.join(notifying)}" if notifying else "")
        )
        self.say("  settings from clusters/argocd-values.yaml, except: " + "; ".join(overrides))
        for name, cluster in self.clusters.items():
            n = cluster.notifications
            if n is not None and n.enabled:
                self.say(
                    f"  {name}: notifications controller with argocd-notifications-cm ({', '.join(sorted(n.cm))}) "
                    f"from the `notifications` values, except: " + "; ".join(n.overrides)
                )
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
        from gitops.toolchain.schemas import crd_files

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
        for name, cluster in self.clusters.items():
            # Seen by the scenario's polls (every POLL seconds): where a fresh cluster's time goes, wave by wave.
            order = sorted(cluster.settled.items(), key=lambda item: item[1])
            self.say(f"  {name}: first Synced/Healthy at " + ", ".join(f"{app} {at - t0:.0f}s" for app, at in order))

    def _step(
        self,
        title: str,
        change: Callable[[], object],
        changes: set[str],
        then: Callable[[], object] | None = None,
        *,
        prune_by_hand: bool = False,
    ) -> object:
        """Commit ``change``, publish it, and wait until every environment runs what `gitops render` says.

        ``changes``: the environments whose rendered manifests must change; every other one must render the same
        and keep its Deployments' generations (nothing rolled out there). ``prune_by_hand``: the change stops
        rendering objects in an environment that never prunes by itself, and names them in its output; they must be
        exactly what Argo CD reports as requiring pruning, and are then pruned as an operator would.
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
                    f"{title}: `gitops render --env {env}` is the same before and after the commit {sha[:12]}"
                )
            if env not in changes and not same:
                raise ScenarioError(
                    f"{title}: the commit {sha[:12]} changes `gitops render --env {env}`, expected no change"
                )
        if prune_by_hand:
            announced = sorted(re.findall(r"^  - (.+ \(.+\))$", str(result), flags=re.M))
            if not announced:
                raise ScenarioError(f"{title}: the command named no object that needs a sync with prune:\n{result}")
            for env in sorted(changes):
                self._sync_with_prune(title, env, announced)
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

    def _sync_with_prune(self, title: str, env: str, announced: list[str]) -> None:
        """Wait until Argo CD reports exactly the ``announced`` objects as requiring pruning, then do what an
        operator does in the UI (`argocd app sync --prune`): an operation on the Application, syncing with prune."""
        cluster = self.clusters[self.layout.env_cluster[env]]
        names = list(self.expected[env].applications)

        def idle(app: dict) -> bool:
            # An operation running (the automated sync of the same commit) would overwrite ours when it completes.
            phase = ((app.get("status") or {}).get("operationState") or {}).get("phase")
            return not app.get("operation") and phase not in ("Running", "Terminating")

        def waiting() -> dict[str, list[str]] | None:
            out = {}
            for name in names:
                app = cluster.application(name) or {}
                if checks.live_revisions(app) != checks.expected_revisions(app, self.published) or not idle(app):
                    return None
                out[name] = checks.requiring_pruning(app)
            return out if any(out.values()) else None

        def describe() -> str:
            return "; ".join(checks.describe_app(cluster.application(n) or {}) for n in names)

        pending, _ = wait_for(
            f"{title}: Argo CD to report objects requiring pruning in {env}",
            waiting,
            self.timeout,
            describe,
            interval=POLL,
            alive=self._check_alive,
        )
        reported = sorted(f"{o} ({app})" for app, objects in pending.items() for o in objects)
        if reported != announced:
            raise ScenarioError(f"{title}: Argo CD requires pruning {reported}; `gitops` announced {announced}")
        operator = f"e2e-operator-{time.monotonic_ns()}"
        operation = {"initiatedBy": {"username": operator}, "sync": {"prune": True}}
        for name, objects in pending.items():
            if objects:
                wait_for(
                    f"{title}: {name} free of other operations, to start the sync with prune",
                    partial(cluster.request_operation, name, operation),
                    self.timeout,
                    describe,
                    interval=0.5,
                )

        def pruned() -> bool:
            for name, objects in pending.items():
                state = ((cluster.application(name) or {}).get("status") or {}).get("operationState") or {}
                by = ((state.get("operation") or {}).get("initiatedBy") or {}).get("username")
                if objects and (by != operator or state.get("phase") != "Succeeded"):
                    return False
            return True

        wait_for(f"{title}: the sync with prune in {env}", pruned, self.timeout, describe, interval=POLL)
        self.say(f"    {env}: synced with prune by hand, deleting {', '.join(reported)}")

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

    def _gitops(self, *args: str) -> str:
        proc = subprocess.run(
            [sys.executable, "-m", "gitops", *args], cwd=self.git.work, capture_output=True, text=True
        )
        if proc.returncode != 0:
            raise ScenarioError(f"`gitops {' '.join(args)}` failed:\n{(proc.stderr or proc.stdout).strip()}")
        for line in proc.stdout.strip().splitlines()[:12]:
            self.say(f"    {line}")
        return proc.stdout

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
        from gitops_testing.e2e.gitrepo import run_git

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

    # -- the promotion gate: Argo CD notifications → GitHub → the promote workflow ------------------------------------

    def _prepare_gate(self, env: str, app: str) -> None:
        """The GitHub API stand-in (the notifications controllers are configured with its address) and the image
        that no registry has, so the clusters' kwok keeps its pods from ever getting ready."""
        release = yaml.safe_load((self.git.work / "environments" / env / app / "release.yaml").read_text())
        tag = f"{release['image']['tag']}-e2e.unpullable"
        self.unpullable = {
            "repository": str(release["image"]["repository"]),
            "tag": tag,
            "digest": "sha256:" + hashlib.sha256(f"{app}:{tag}".encode()).hexdigest(),
        }
        self.github = GitHubAPI(full_name(self.git.url))
        self.github.start()

    def _unpullable_refs(self) -> tuple[str, ...]:
        image = self.unpullable
        return (f"{image['repository']}@{image['digest']}", f"{image['repository']}:{image['tag']}")

    def _notifications(self, cluster: str) -> Notifications:
        assert self.github is not None
        files = [
            self.git.work / "clusters/argocd-values.yaml",
            self.git.work / "clusters" / cluster / "argocd-values.yaml",
        ]
        values = [yaml.safe_load(f.read_text()) for f in files if f.exists()]
        n = Notifications.from_values(values, self.github.url, f"clusters/{cluster}/argocd-values.yaml")
        if n.github_authorization:
            self.github.authorizations.add(n.github_authorization)
        return n

    def _gate(self, first: str, second: str, app: str) -> None:
        """What decides whether a release reaches the next environment, with the real notifications controller: a
        release that never gets healthy sends nothing; one that does sends exactly one dispatch, and the promote
        workflow's own command, given that dispatch, promotes exactly it."""
        self._degraded_release(first, app)
        self._step(
            f"bump: a {app} image that runs, into {first} after the degraded one",
            partial(self._bump, first, app),
            {first},
        )
        dispatch = self._dispatch_for(first, app)
        self._step(
            "promote: the promote workflow's command with that dispatch, merged",
            partial(self._promote_workflow, dispatch),
            {second},
            partial(self._runs_dispatched_release, second, dispatch),
        )
        self._dispatched_once_per_healthy_image(first, app)

    def _app_in(self, env: str, app: str) -> str:
        """The name of the Application that runs ``app`` in ``env``, as rendered."""
        for name, spec in self.expected[env].applications.items():
            if (spec["metadata"].get("labels") or {}).get("app.kubernetes.io/name") == app:
                return name
        raise ScenarioError(f"`gitops render --env {env}` has no Application labelled app.kubernetes.io/name={app}")

    def _degraded_release(self, env: str, app: str) -> None:
        image = self.unpullable
        pushed = time.monotonic()
        self._gitops(
            "bump", "--env", env, "--app", app,
            "--image", f"{image['repository']}:{image['tag']}", "--digest", image["digest"],
        )  # fmt: skip
        sha = self.git.push()
        self.published = self.git.publish(self.subs, f"e2e: publish {sha[:12]}")
        for cluster in self.clusters.values():
            cluster.refresh()
        self.expected = {e: self._render(e) for e in self.layout.order}
        cluster, name = self.clusters[self.layout.env_cluster[env]], self._app_in(env, app)
        message, _ = wait_for(
            f"Application {name} to be Synced at {self.published[:12]} and Degraded",
            lambda: checks.degraded(cluster.application(name) or {}, self.published),
            self.timeout,
            lambda: checks.describe_app(cluster.application(name) or {}) + checks.events(cluster, name),
            interval=POLL,
            alive=self._check_alive,
        )
        took = self.timings.add("degraded: commit → Synced/Degraded", time.monotonic() - pushed)
        self.say(
            f"[{took:5.1f}s] degraded: `gitops bump` {image['tag']} (no registry has it) into {env}: {name} Synced and "
            f"Degraded at {sha[:12]}: {message}"
        )

    def _dispatch_for(self, env: str, app: str) -> Dispatch:
        """The one dispatch for what ``env`` runs now; the time from the Application turning Healthy to its arrival."""
        assert self.github is not None
        github = self.github
        cluster, name = self.clusters[self.layout.env_cluster[env]], self._app_in(env, app)
        release = yaml.safe_load((self.git.work / "environments" / env / app / "release.yaml").read_text())
        image = {k: str(release["image"][k] or "") for k in ("repository", "tag", "digest")}
        event_type = f"{env}-healthy"

        def arrived() -> Dispatch | None:
            return next((d for d in github.dispatches(event_type) if d.client_payload.get("image") == image), None)

        def describe() -> str:
            refused = [f"  refused: {r.method} {r.path} → {r.status} {r.message}" for r in github.refusals()]
            return "\n".join([*refused, cluster.argocd.log_tails(10)])

        dispatch, _ = wait_for(
            f"a `{event_type}` dispatch for {name} with image {image}", arrived, self.timeout, describe,
            interval=0.5, alive=self._check_alive,
        )  # fmt: skip
        application = cluster.application(name) or {}
        payload = dispatch.client_payload
        want = {"app": app, "application": name, "environment": env, "image": image}
        wrong = {k: payload.get(k) for k, v in want.items() if payload.get(k) != v}
        revisions = payload.get("revisions") or []
        if wrong or not revisions or set(revisions) != {self.published}:
            raise ScenarioError(
                f"the `{event_type}` dispatch does not name what {name} runs: expected {want} at revision "
                f"{self.published[:12]}, got {payload}"
            )
        after = self.timings.add(
            "notifications: Healthy → dev-healthy received", dispatch.received - checks.healthy_since(application)
        )
        self.say(
            f"[{after:5.1f}s] notifications: `{event_type}` dispatch received (POST /repos/{dispatch.repository}/"
            f"dispatches) {after:.1f}s after {name} turned Healthy: app {app}, image {image['tag']}, revision "
            f"{self.published[:12]}"
        )
        return dispatch

    def _promote_workflow(self, dispatch: Dispatch) -> None:
        """The promote workflow's step, as GitHub Actions runs it for this dispatch. Argo CD synced the published
        commit; GitHub would have named the commit it was published from (substitution 1), so that one is sent."""
        github_of = {served: source for source, served in self.git.history}
        payload = dict(dispatch.client_payload)
        unknown = [r for r in payload["revisions"] if r not in github_of]
        if unknown:
            raise ScenarioError(f"the dispatch names revisions {unknown} that were never published")
        payload["revisions"] = [github_of[r] for r in payload["revisions"]]
        step = workflow.promote_step(self.git.work)
        self.say(
            f"    {step.describe()}, for repository_dispatch {dispatch.event_type} (revision "
            f"{dispatch.client_payload['revisions'][0][:12]} as published = {payload['revisions'][0][:12]} on GitHub)"
        )
        event = workflow.dispatch_event(dispatch.event_type, payload)
        proc = workflow.run(step, self.git.work, event, self.state / "runner")
        if proc.returncode != 0:
            raise ScenarioError(f"{step.describe()} failed:\n{(proc.stderr or proc.stdout).strip()}")
        for line in proc.stdout.strip().splitlines()[:6]:
            self.say(f"    {line}")
        self.dispatched_commit = payload["revisions"][0]

    def _runs_dispatched_release(self, env: str, dispatch: Dispatch) -> None:
        image = dispatch.client_payload["image"]
        ref = f"{image['repository']}@{image['digest']}" if image["digest"] else f"{image['repository']}:{image['tag']}"
        running = sorted({i for images in self._images(env).values() for i in images})
        if running != [ref]:
            raise ScenarioError(f"{env} runs {running}, expected exactly the dispatched image {ref}")
        trailer = run_git(self.git.work, "log", "-1", "--format=%(trailers:key=Source-Commit,valueonly)").strip()
        if trailer != self.dispatched_commit:
            raise ScenarioError(
                f"the promotion's Source-Commit is {trailer!r}, expected the dispatched {self.dispatched_commit}"
            )

    def _dispatched_once_per_healthy_image(self, env: str, app: str) -> None:
        """Over the whole run: one dispatch per image ``env`` ran healthy (never again for a later commit with the
        same image), none for the degraded one, and nothing GitHub would have refused."""
        assert self.github is not None
        ran: list[dict] = []
        for source, _ in self.git.history:
            text = run_git(self.git.github, "show", f"{source}:environments/{env}/{app}/release.yaml")
            image = {k: str(v or "") for k, v in (yaml.safe_load(text)["image"]).items()}
            if image not in ran:
                ran.append(image)
        sent = [d.client_payload.get("image") for d in self.github.dispatches(f"{env}-healthy")]
        problems = [
            f"{i['tag']}: {sent.count(i)} dispatches, expected 1"
            for i in ran
            if i != self.unpullable and sent.count(i) != 1
        ]
        problems += [
            f"{i['tag'] if isinstance(i, dict) else i}: sent, but {env} never ran it" for i in sent if i not in ran
        ]
        if sent.count(self.unpullable):
            problems.append(
                f"{self.unpullable['tag']}: {sent.count(self.unpullable)} dispatches for a Degraded release"
            )
        refused = [f"{r.method} {r.path} → {r.status} {r.message}" for r in self.github.refusals()]
        if problems or refused:
            raise ScenarioError("the promotion gate: " + "; ".join(problems + refused))
        self.timings.count(f"notifications: {env}-healthy dispatches (one per image {env} ran healthy)", len(sent))
        self.timings.count(f"notifications: {env}-healthy dispatches for the degraded release", 0)
        self.say(
            f"  gate: {len(sent)} `{env}-healthy` dispatches, one for each image {env} ran healthy "
            f"({', '.join(i['tag'] for i in ran if i != self.unpullable)}); none for {self.unpullable['tag']}"
        )

    def _failed_syncs(self, what: str, required_zero: bool = False) -> None:
        """Count the failed sync attempts since the last count; the bootstrap must have none."""
        total = sum(c.syncs.failed() for c in self.clusters.values())
        n, self.failed_syncs_counted = total - self.failed_syncs_counted, total
        self.timings.count(f"failed sync attempts: {what}", n)
        if n:
            failures = [f"{name}/{f}" for name, c in self.clusters.items() for f in c.syncs.failures()]
            self.say(f"  {what}: {n} failed sync attempt(s); every failed operation so far:")
            for line in failures:
                self.say(f"    - {line}")
            for name, cluster in self.clusters.items():
                if cluster.syncs.failures():
                    self.say(f"  {name}: the application controller's last warnings and errors:")
                    for line in cluster.argocd.controller_errors():
                        self.say(f"    {line}")
            if required_zero:
                raise ScenarioError(f"{what}: {n} failed sync attempt(s); a fresh cluster must converge in one pass")
