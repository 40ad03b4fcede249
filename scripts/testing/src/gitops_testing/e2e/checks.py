"""Assertions about a cluster: Applications converged, generated as rendered, workloads live as rendered.

Each returns a list of problems (empty: holds), so a bounded wait can poll it and, on timeout, say exactly what was
still wrong: which Application, which status, its conditions and last events.
"""

from __future__ import annotations

import datetime as dt

from gitops.git import SHA_RE
from gitops_testing.e2e.argocd import NAMESPACE
from gitops_testing.e2e.cluster import LocalCluster
from gitops_testing.e2e.expect import Rendered, diff, subset_mismatches


def sources(app: dict) -> list[dict]:
    spec = app.get("spec") or {}
    return spec.get("sources") or ([spec["source"]] if spec.get("source") else [])


def expected_revisions(app: dict, published: str) -> list[str]:
    """Each source's commit: its pinned sha, else the published main (every other ref here follows main)."""
    return [s["targetRevision"] if SHA_RE.match(s.get("targetRevision", "")) else published for s in sources(app)]


def live_revisions(app: dict) -> list[str]:
    sync = (app.get("status") or {}).get("sync") or {}
    return sync.get("revisions") or ([sync["revision"]] if sync.get("revision") else [])


def requiring_pruning(app: dict) -> list[str]:
    """`Kind namespace/name` of each live object the Application no longer renders (Argo CD's requiresPruning)."""
    return sorted(
        f"{r.get('kind')} {r['namespace'] + '/' if r.get('namespace') else ''}{r.get('name')}"
        for r in (app.get("status") or {}).get("resources") or []
        if r.get("requiresPruning")
    )


def app_problem(app: dict, published: str) -> str | None:
    """Why ``app`` is not yet Synced and Healthy at the commits it should run (None: it is)."""
    st = app.get("status") or {}
    sync, health = (st.get("sync") or {}).get("status"), (st.get("health") or {}).get("status")
    phase = (st.get("operationState") or {}).get("phase")
    want, have = expected_revisions(app, published), live_revisions(app)
    if sync == "Synced" and health == "Healthy" and have == want and phase not in ("Running", "Terminating"):
        return None
    return f"Application {app['metadata']['name']}: " + describe_app(app, want)


def degraded(app: dict, published: str) -> str | None:
    """What Argo CD says is Degraded when ``app`` is Synced at the commits it should run and Degraded (None: not)."""
    st = app.get("status") or {}
    sync, health = (st.get("sync") or {}).get("status"), (st.get("health") or {}).get("status")
    phase = (st.get("operationState") or {}).get("phase")
    if not app or sync != "Synced" or health != "Degraded" or phase in ("Running", "Terminating"):
        return None
    if live_revisions(app) != expected_revisions(app, published):
        return None
    reasons = [
        f"{r.get('kind')} {r.get('name')}: {(r.get('health') or {}).get('message', '').strip()}"
        for r in st.get("resources") or []
        if (r.get("health") or {}).get("status") == "Degraded"
    ]
    return "; ".join(reasons) or "Degraded"


def healthy_since(app: dict) -> float:
    """When ``app`` last became Synced, Healthy and done syncing (epoch seconds, to the second Argo CD records): the
    later of its health's last transition and its operation's end."""
    st = app.get("status") or {}
    stamps = [(st.get("health") or {}).get("lastTransitionTime"), (st.get("operationState") or {}).get("finishedAt")]
    times = [dt.datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp() for t in stamps if t]
    if not times:
        raise ValueError(f"Application {app.get('metadata', {}).get('name')} records no health transition or sync end")
    return max(times)


def describe_app(app: dict, want: list[str] | None = None) -> str:
    st = app.get("status") or {}
    parts = [
        f"sync={(st.get('sync') or {}).get('status', '-')}",
        f"health={(st.get('health') or {}).get('status', '-')}",
        f"revisions={[r[:12] for r in live_revisions(app)]}",
    ]
    if want is not None:
        parts.append(f"expected={[r[:12] for r in want]}")
    op = st.get("operationState") or {}
    if op:
        parts.append(f"operation={op.get('phase')}: {(op.get('message') or '').strip()[:300]}")
    for c in st.get("conditions") or []:
        parts.append(f"condition {c.get('type')}: {(c.get('message') or '').strip()[:300]}")
    unhealthy = [
        f"{r.get('kind')}/{r.get('namespace', '')}/{r.get('name')}: {(r.get('health') or {}).get('status')} "
        f"{(r.get('health') or {}).get('message', '')}".strip()
        for r in st.get("resources") or []
        if (r.get("health") or {}).get("status") not in (None, "Healthy")
    ]
    if unhealthy:
        parts.append("unhealthy: " + "; ".join(unhealthy[:5]))
    out_of_sync = [
        f"{r.get('kind')}/{r.get('name')}" for r in st.get("resources") or [] if r.get("status") == "OutOfSync"
    ]
    if out_of_sync:
        parts.append("out of sync: " + ", ".join(out_of_sync[:8]))
    return "; ".join(parts)


def converged(cluster: LocalCluster, published: str) -> list[str]:
    """Every Application of the cluster Synced and Healthy at the published commit (or its pin)."""
    apps = cluster.applications()
    if not apps:
        return ["no Applications yet"]
    return [p for a in apps.values() if (p := app_problem(a, published))]


def generated_as_rendered(cluster: LocalCluster, rendered: Rendered) -> list[str]:
    """The env's ApplicationSet generated exactly the rendered Applications: same names, same spec."""
    problems = []
    live = cluster.applications()
    generated = {
        n
        for n, a in live.items()
        if any(
            o.get("kind") == "ApplicationSet" and o.get("name") == rendered.appset
            for o in a["metadata"].get("ownerReferences") or []
        )
    }
    names = set(rendered.applications)
    if generated != names:
        problems.append(
            f"ApplicationSet {rendered.appset} generated {sorted(generated) or 'nothing'}, "
            f"gitops render says {sorted(names)}"
        )
    for name, want in rendered.applications.items():
        have = live.get(name)
        if have is None:
            continue
        if subset_mismatches(want["spec"], have["spec"]) or subset_mismatches(have["spec"], want["spec"]):
            problems.append(f"Application {name} differs from gitops render:\n{diff(want['spec'], have['spec'], name)}")
        for field in ("labels", "annotations"):
            extra = subset_mismatches(want["metadata"].get(field) or {}, have["metadata"].get(field) or {})
            problems += [f"Application {name} metadata.{field}{m}" for m in extra]
    return problems


def workloads_as_rendered(cluster: LocalCluster, rendered: Rendered) -> list[str]:
    """Every object the env's Applications render is live and carries what was rendered; Deployments rolled out."""
    problems = []
    for app_name, app in rendered.applications.items():
        namespace = app["spec"]["destination"].get("namespace")
        hpas = {
            (h["spec"]["scaleTargetRef"]["kind"], h["spec"]["scaleTargetRef"]["name"]): h
            for h in rendered.objects(app_name, "HorizontalPodAutoscaler")
        }
        for want in rendered.manifests[app_name]:
            kind, name = want["kind"], want["metadata"]["name"]
            ns = want["metadata"].get("namespace") or namespace
            have = cluster.kube.get(want["apiVersion"], kind, name, ns)
            where = f"{kind} {ns}/{name} ({app_name})"
            if have is None:
                problems.append(f"{where}: not found")
                continue
            wanted = {k: want[k] for k in want if k not in ("apiVersion", "kind", "status")}
            problems += [f"{where}: {m}" for m in subset_mismatches(wanted, have)[:5]]
            if kind == "Deployment":
                problems += [f"{where}: {p}" for p in rollout_problems(have, want, hpas.get((kind, name)))]
    return problems


def rollout_problems(have: dict, want: dict, hpa: dict | None) -> list[str]:
    spec, st = have["spec"], have.get("status") or {}
    replicas = want["spec"].get("replicas")
    if replicas is None:
        replicas = hpa["spec"].get("minReplicas", 1) if hpa else 1
    problems = []
    if st.get("observedGeneration", 0) < have["metadata"]["generation"]:
        problems.append("the new generation is not observed yet")
    if spec.get("replicas") != replicas:
        problems.append(
            f"spec.replicas is {spec.get('replicas')}, expected {replicas}" + (" (HPA minimum)" if hpa else "")
        )
    counts = {k: st.get(k, 0) for k in ("replicas", "updatedReplicas", "readyReplicas", "availableReplicas")}
    if any(v != replicas for v in counts.values()):
        problems.append(f"rollout not complete: {counts}, expected {replicas} each")
    return problems


def live(cluster: LocalCluster, rendered: Rendered, api_version: str, kind: str) -> dict[str, dict]:
    """The live objects of one kind that the env's Applications render, by `<namespace>/<name>`."""
    out = {}
    for app_name, app in rendered.applications.items():
        ns = app["spec"]["destination"].get("namespace")
        for want in rendered.objects(app_name, kind):
            have = cluster.kube.get(api_version, kind, want["metadata"]["name"], ns)
            if have:
                out[f"{ns}/{want['metadata']['name']}"] = have
    return out


def deployment_images(cluster: LocalCluster, rendered: Rendered) -> dict[str, list[str]]:
    return {k: t["images"] for k, t in pod_templates(cluster, rendered).items()}


def pod_templates(cluster: LocalCluster, rendered: Rendered) -> dict[str, dict]:
    """Per live Deployment: its containers' images and its pod template's annotations — what a chart or an image
    change moves, and an overlay change of replicas does not."""
    out = {}
    for key, have in live(cluster, rendered, "apps/v1", "Deployment").items():
        template = have["spec"]["template"]
        out[key] = {
            "images": [c["image"] for c in template["spec"]["containers"]],
            "annotations": dict((template.get("metadata") or {}).get("annotations") or {}),
        }
    return out


def hpa_minimums(cluster: LocalCluster, rendered: Rendered) -> dict[str, int]:
    hpas = live(cluster, rendered, "autoscaling/v2", "HorizontalPodAutoscaler")
    return {key: int(have["spec"].get("minReplicas", 1)) for key, have in hpas.items()}


def deployment_generations(cluster: LocalCluster, rendered: Rendered) -> dict[str, int]:
    return {k: d["metadata"]["generation"] for k, d in live(cluster, rendered, "apps/v1", "Deployment").items()}


def refused(cluster: LocalCluster, name: str) -> str | None:
    """The InvalidSpecError message of an Application its project does not permit (None: not refused yet)."""
    app = cluster.application(name)
    for c in ((app or {}).get("status") or {}).get("conditions") or []:
        message = c.get("message") or ""
        if c.get("type") == "InvalidSpecError" and (
            "not permitted" in message or "do not match any of the allowed destinations" in message
        ):
            return message
    return None


def events(cluster: LocalCluster, name: str) -> str:
    lines = cluster.kube.events(NAMESPACE, name)
    return ("\n  last events: " + " | ".join(lines)) if lines else ""
