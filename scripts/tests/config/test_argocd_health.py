"""The health checks clusters/argocd-values.yaml gives Argo CD, run by the pinned Argo CD itself
(`argocd admin settings resource-overrides health`, the same Lua VM as the application controller), with argocd-cm as
the argo-cd chart writes it from `configs.cm`.

The HorizontalPodAutoscaler check is Argo CD's built-in one except for the state every rollout passes through (no
pod has a whole metrics window yet); the Application check makes the root's and the platform's sync waves wait until
each child has synced what it should run.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
CLUSTERS = sorted(p.parent.name for p in (REPO / "clusters").glob("*/argocd-values.yaml"))
NO_WINDOW = (
    "the HPA was unable to compute the replica count: failed to get cpu utilization: did not receive metrics for "
    "targeted pods (pods might be unready)"
)
ABLE = {"type": "AbleToScale", "status": "True", "reason": "ReadyForNewScale", "message": "recommended size matches"}


def argocd_cm(cluster: str) -> dict:
    data: dict[str, str] = {}
    for path in (REPO / "clusters/argocd-values.yaml", REPO / "clusters" / cluster / "argocd-values.yaml"):
        data.update(((yaml.safe_load(path.read_text()) or {}).get("configs") or {}).get("cm") or {})
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "argocd-cm"}, "data": data}


def test_every_cluster_gets_the_same_health_checks():
    checks = [
        {k: v for k, v in argocd_cm(c)["data"].items() if k.startswith("resource.customizations.health.")}
        for c in CLUSTERS
    ]
    assert checks[0] and all(c == checks[0] for c in checks)


def health(argocd: Path, tmp_path: Path, obj: dict, cluster: str = CLUSTERS[0]) -> tuple[str, str]:
    cm, resource = tmp_path / "argocd-cm.yaml", tmp_path / "resource.yaml"
    cm.write_text(yaml.safe_dump(argocd_cm(cluster)))
    resource.write_text(yaml.safe_dump(obj))
    proc = subprocess.run(
        [str(argocd), "admin", "settings", "resource-overrides", "health", str(resource), "--argocd-cm-path", str(cm)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    fields = dict(line.split(": ", 1) for line in proc.stdout.splitlines() if ": " in line)
    return fields["STATUS"], fields.get("MESSAGE", "")


def hpa(*conditions: dict) -> dict:
    doc = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "pod-details", "namespace": "apps-prod"},
        "spec": {"maxReplicas": 100, "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "x"}},
    }
    if conditions:
        doc["status"] = {"conditions": list(conditions)}
    return doc


def scaling_active(status: str, reason: str, message: str) -> dict:
    return {"type": "ScalingActive", "status": status, "reason": reason, "message": message}


def test_an_hpa_whose_new_pods_have_no_metrics_window_yet_is_healthy(argocd, tmp_path):
    status, message = health(argocd, tmp_path, hpa(ABLE, scaling_active("False", "FailedGetResourceMetric", NO_WINDOW)))
    assert status == "Healthy"
    assert message.startswith("replicas held until the new pods have a metrics window") and NO_WINDOW in message


@pytest.mark.parametrize(
    ("condition", "reason"),
    [
        (
            scaling_active(
                "False",
                "FailedGetResourceMetric",
                "the HPA was unable to compute the replica count: failed to get cpu utilization: unable to get "
                "metrics for resource cpu: no metrics returned from resource metrics API",
            ),
            "no metrics returned from resource metrics API",
        ),
        (
            scaling_active(
                "False",
                "FailedGetResourceMetric",
                "the HPA was unable to compute the replica count: failed to get cpu utilization: missing request for "
                "cpu in container pod-details of Pod pod-details-1",
            ),
            "missing request for cpu",
        ),
        (scaling_active("False", "InvalidSelector", "the HPA target's scale is missing a selector"), "selector"),
        (
            {"type": "AbleToScale", "status": "False", "reason": "FailedGetScale", "message": "deployments not found"},
            "deployments not found",
        ),
    ],
)
def test_an_hpa_that_cannot_get_metrics_or_scale_is_degraded_as_upstream(argocd, tmp_path, condition, reason):
    status, message = health(argocd, tmp_path, hpa(ABLE, condition))
    assert (status, reason in message) == ("Degraded", True)


def test_an_hpa_that_scales_is_healthy_and_one_without_status_progressing(argocd, tmp_path):
    valid = scaling_active("True", "ValidMetricFound", "the HPA was able to compute the replica count")
    assert health(argocd, tmp_path, hpa(ABLE, valid)) == ("Healthy", ABLE["message"])
    assert health(argocd, tmp_path, hpa()) == ("Progressing", "Waiting to Autoscale")


A, B = "a" * 40, "b" * 40


def child(health: str | None, sync: str = "Synced", revision: str = A, op: dict | None = None, **extra) -> dict:
    app = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Application", "metadata": {"name": "platform"}, **extra}
    if health is not None:
        app["status"] = {"health": {"status": health}, "sync": {"status": sync, "revision": revision}}
        if op is not None:
            app["status"]["operationState"] = op
    return app


def operation(phase: str, revision: str = A, message: str = "") -> dict:
    op = {"phase": phase, "message": message, "operation": {"sync": {"revision": revision}}}
    if phase != "Running":
        op["syncResult"] = {"revision": revision}
    return op


@pytest.mark.parametrize(
    ("app", "expected"),
    [
        (child(None), "Progressing"),
        (child("Healthy", op=operation("Succeeded")), "Healthy"),
        (child("Degraded", op=operation("Succeeded")), "Degraded"),
        # Created, not synced yet: its own health ignores what is still missing.
        (child("Healthy", sync="OutOfSync"), "Progressing"),
        (child("Healthy", op=operation("Running")), "Progressing"),
        (child("Healthy", op=operation("Succeeded"), operation={"sync": {}}), "Progressing"),
        # A new revision its automated sync has not taken yet.
        (child("Healthy", sync="OutOfSync", revision=B, op=operation("Succeeded")), "Progressing"),
        # Drift, or a prune it may not do, after syncing this revision: not the parent's business.
        (child("Healthy", sync="OutOfSync", op=operation("Succeeded")), "Healthy"),
        (child("Healthy", sync="OutOfSync", op=operation("Failed", message="one or more objects failed")), "Degraded"),
        # root, syncing itself: a wave of that sync must not wait for the sync to end.
        (
            child(
                "Progressing",
                op=operation("Running"),
                metadata={"name": "root", "annotations": {"platform.azurelaboratory.com/applies-itself": "true"}},
            ),
            "Healthy",
        ),
    ],
)
def test_a_child_application_is_healthy_for_its_parent_once_it_has_synced_its_revision(argocd, tmp_path, app, expected):
    assert health(argocd, tmp_path, app)[0] == expected


def test_a_multi_source_child_compares_every_revision(argocd, tmp_path):
    app = child("Healthy", sync="OutOfSync", op=operation("Succeeded"))
    app["status"]["sync"]["revisions"] = [A, B]
    app["status"]["operationState"]["syncResult"] = {"revisions": [A, A]}
    assert health(argocd, tmp_path, app)[0] == "Progressing"
    app["status"]["operationState"]["syncResult"] = {"revisions": [A, B]}
    assert health(argocd, tmp_path, app)[0] == "Healthy"
