"""`gitops render`: the Applications an environment generates and their manifests, as Argo CD would render them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO_URL = "https://github.com/azurelaboratory/gitops-monorepo.git"


def gitops(repo: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "gitops", *args], cwd=repo, capture_output=True, text=True, timeout=300
    )
    if ok:
        assert proc.returncode == 0, f"gitops {' '.join(args)}:\n{proc.stdout[-3000:]}\n{proc.stderr}"
    return proc


def git(repo: Path, *args: str) -> str:
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    import os

    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True, env={**os.environ, **env}
    ).stdout.strip()


def documents(text: str) -> list[dict]:
    return [d for d in yaml.safe_load_all(text) if d]


@pytest.fixture(scope="module")
def repo(seed_repo: Path, helm: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("render") / "repo"
    git(seed_repo.parent, "clone", "--quiet", str(seed_repo), str(path))
    return path


@pytest.fixture(scope="module")
def renders(repo: Path) -> dict[str, str]:
    return {env: gitops(repo, "render", "--env", env).stdout for env in ("dev", "prod")}


def applications(text: str) -> list[dict]:
    return [d for d in documents(text) if d.get("kind") == "Application"]


def test_dev_generates_exactly_its_applications(renders: dict[str, str]):
    (app,) = applications(renders["dev"])
    assert app["metadata"]["name"] == "pod-details-dev"
    assert app["metadata"]["namespace"] == "argocd"
    spec = app["spec"]
    assert spec["project"] == "apps"
    assert spec["destination"] == {"server": "https://kubernetes.default.svc", "namespace": "apps-dev"}
    chart, values = spec["sources"]
    assert chart["repoURL"] == REPO_URL
    assert chart["path"] == "apps/pod-details/chart"
    assert chart["targetRevision"] == "main"
    assert chart["helm"]["releaseName"] == "pod-details"
    assert chart["helm"]["valueFiles"] == ["$values/environments/dev/pod-details/values.yaml"]
    assert chart["helm"]["valuesObject"]["image"]["repository"] == "docker.io/azurelaboratory/pod-details"
    assert values == {"repoURL": REPO_URL, "targetRevision": "main", "ref": "values"}


def test_prod_generates_its_application_from_its_chart_copy_at_main(repo: Path, renders: dict[str, str]):
    (app,) = applications(renders["prod"])
    assert app["metadata"]["name"] == "pod-details-prod"
    assert app["spec"]["destination"]["namespace"] == "apps-prod"
    chart, values = app["spec"]["sources"]
    assert chart["path"] == "environments/prod/pod-details/chart"
    assert chart["targetRevision"] == "main"
    assert chart["helm"]["valueFiles"] == ["$values/environments/prod/pod-details/values.yaml"]
    assert values["targetRevision"] == "main"  # one repository, one revision per Application
    # prod preserves its resources when an Application goes away: no resources finalizer.
    assert "finalizers" not in app["metadata"]


def test_manifests_follow_the_applications_sorted_with_headers(renders: dict[str, str]):
    text = renders["dev"]
    docs = documents(text)
    assert docs[0]["kind"] == "Application"  # what will be generated comes first
    manifests = docs[1:]
    keys = [(d["kind"], d["metadata"].get("namespace", ""), d["metadata"]["name"]) for d in manifests]
    assert keys == sorted(keys)
    kinds = {d["kind"] for d in manifests}
    assert {"Deployment", "Service", "HTTPRoute", "NetworkPolicy", "ServiceAccount"} <= kinds
    # Rendered for a cluster with the pinned CRDs: the chart's ServiceMonitor conditional is on.
    assert "ServiceMonitor" in kinds
    # Release name and namespace are what Argo CD passes to helm.
    deployment = next(d for d in manifests if d["kind"] == "Deployment")
    assert deployment["metadata"]["labels"]["app.kubernetes.io/instance"] == "pod-details"
    for chunk in text.split("\n---\n")[1:]:
        if "kind: Application\n" not in chunk:
            assert chunk.startswith("# pod-details-dev · apps/pod-details/chart@main\n"), chunk[:200]
    assert "# Source: pod-details/templates/deployment.yaml" in text


def test_prod_values_and_image_reach_the_manifests(renders: dict[str, str]):
    manifests = documents(renders["prod"])
    hpa = next(d for d in manifests if d["kind"] == "HorizontalPodAutoscaler")
    assert hpa["spec"]["maxReplicas"] <= 100
    route = next(d for d in manifests if d["kind"] == "HTTPRoute")
    assert route["spec"]["hostnames"] == ["pod-details-prod.azurelaboratory.com"]


def test_two_renders_are_byte_identical(repo: Path, renders: dict[str, str]):
    assert gitops(repo, "render", "--env", "dev").stdout == renders["dev"]


def test_out_writes_one_file_per_application(repo: Path, renders: dict[str, str], tmp_path: Path):
    gitops(repo, "render", "--env", "dev", "--out", str(tmp_path / "dev"))
    assert sorted(p.name for p in (tmp_path / "dev").iterdir()) == ["applications.yaml", "pod-details-dev.yaml"]
    written = (tmp_path / "dev/applications.yaml").read_text() + (tmp_path / "dev/pod-details-dev.yaml").read_text()
    assert documents(written) == documents(renders["dev"])


def test_app_filter_and_unknown_environment(repo: Path):
    assert (
        applications(gitops(repo, "render", "--env", "dev", "--app", "pod-details").stdout)[0]["metadata"]["name"]
        == "pod-details-dev"
    )
    proc = gitops(repo, "render", "--env", "staging", ok=False)
    assert proc.returncode == 1
    assert "no environment 'staging'" in proc.stderr and "dev" in proc.stderr
    proc = gitops(repo, "render", "--env", "dev", "--app", "nope", ok=False)
    assert "generates no Application for app 'nope'" in proc.stderr


def test_platform_and_cluster_render_plain_manifests_and_name_upstream_charts(repo: Path, upstream_chart_cache):
    proc = gitops(repo, "render", "--platform")
    kinds = {d["kind"] for d in documents(proc.stdout)}
    assert {"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding", "Namespace"} <= kinds
    assert "pinned, not rendered: Application gateway-crds: path deploy v2.7.2" in proc.stderr  # not a chart
    not_checked = "values not checked against the chart: not obtainable here (chart nginx-gateway-fabric 2.7.2"
    assert f"note: platform/gateway/nginx-gateway-fabric.yaml Application/nginx-gateway-fabric: {not_checked}" in (
        proc.stderr
    )
    proc = gitops(repo, "render", "--cluster", "aks-dev")
    docs = documents(proc.stdout)
    assert any(d["kind"] == "AppProject" for d in docs)
    assert "not a manifest (no apiVersion/kind), skipped: clusters/aks-dev/cluster.yaml" in proc.stderr
    assert "clusters/aks-dev/root.yaml Application/argocd: values not checked against the chart" in proc.stderr
    assert gitops(repo, "render", "--cluster", "nowhere", ok=False).stderr.startswith(
        "error: clusters/nowhere/ does not exist"
    )


def test_the_platforms_charts_render_as_argo_cd_would_with_their_applications_values(
    repo: Path, upstream_chart_cache, tmp_path: Path
):
    """What cert-manager's and metrics-server's Applications apply: the pinned charts, release name, destination
    namespace and valuesObject as Argo CD's repo-server passes them, one file per Application with --out."""
    out = tmp_path / "out"
    gitops(repo, "render", "--platform", "--out", str(out))
    assert {p.name for p in out.iterdir()} >= {"platform.yaml", "cert-manager.yaml", "metrics-server.yaml"}
    text = (out / "cert-manager.yaml").read_text()
    assert "# Application argocd/cert-manager (from platform/cert-manager/cert-manager.yaml)" in text
    assert "# chart github.com/cert-manager/cert-manager@v1.21.2/deploy/charts/cert-manager" in text
    docs = documents(text)
    deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    assert set(deployments) == {"cert-manager", "cert-manager-cainjector", "cert-manager-webhook"}
    assert {(d["metadata"]["namespace"], d["spec"]["replicas"]) for d in deployments.values()} == {("cert-manager", 2)}
    assert len([d for d in docs if d["kind"] == "CustomResourceDefinition"]) == 6  # crds.enabled: helm --include-crds
    assert len([d for d in docs if d["kind"] == "PodDisruptionBudget"]) == 3
    leases = [d for d in docs if d["kind"] == "Role" and "leaderelection" in d["metadata"]["name"]]
    assert leases and all(r["metadata"]["namespace"] == "cert-manager" for r in leases)  # global.leaderElection
    config = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "cert-manager")
    assert "gatewayAPI" in config["data"]["config.yaml"]
    metrics = documents((out / "metrics-server.yaml").read_text())
    (deployment,) = [d for d in metrics if d["kind"] == "Deployment"]
    assert deployment["metadata"]["namespace"] == "kube-system" and deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"].endswith("metrics-server:v0.9.0")


def test_a_chart_change_at_head_changes_dev_and_leaves_prod_byte_identical(repo: Path, renders: dict[str, str]):
    service = repo / "apps/pod-details/chart/templates/service.yaml"
    original = service.read_text()
    service.write_text(
        original.replace("metadata:\n", 'metadata:\n  annotations:\n    example.com/changed: "true"\n', 1)
    )
    git(repo, "commit", "--quiet", "-am", "chart: annotate the Service")
    try:
        dev, prod = gitops(repo, "render", "--env", "dev").stdout, gitops(repo, "render", "--env", "prod").stdout
        assert prod == renders["prod"]
        assert dev != renders["dev"]
        svc = next(d for d in documents(dev) if d["kind"] == "Service")
        assert svc["metadata"]["annotations"] == {"example.com/changed": "true"}
        # --ref renders the repository as it was: dev's manifests before the change.
        before = gitops(repo, "render", "--env", "dev", "--ref", "HEAD~1").stdout
        assert documents(before) == documents(renders["dev"])
    finally:
        git(repo, "reset", "--quiet", "--hard", "HEAD~1")


def test_the_work_tree_is_what_branch_following_sources_render(repo: Path, renders: dict[str, str]):
    values = repo / "environments/dev/pod-details/values.yaml"
    original = values.read_text()
    values.write_text(original + "replicaCount: 3\n")
    try:
        deployment = next(
            d for d in documents(gitops(repo, "render", "--env", "dev").stdout) if d["kind"] == "Deployment"
        )
        assert deployment["spec"]["replicas"] == 3
        committed = next(
            d
            for d in documents(gitops(repo, "render", "--env", "dev", "--ref", "HEAD").stdout)
            if d["kind"] == "Deployment"
        )
        assert committed["spec"]["replicas"] == 1
    finally:
        values.write_text(original)


def test_an_overlay_change_on_main_changes_that_environment_alone(repo: Path, renders: dict[str, str]):
    """The incident: prod's minimum raised on main while an unpromoted chart change sits there too."""
    service = repo / "apps/pod-details/chart/templates/service.yaml"
    values = repo / "environments/prod/pod-details/values.yaml"
    chart_before, values_before = service.read_text(), values.read_text()
    service.write_text(chart_before.replace("metadata:\n", 'metadata:\n  annotations:\n    example.com/new: "1"\n', 1))
    values.write_text(values_before.replace("minReplicas: 2", "minReplicas: 4"))
    try:
        prod = documents(gitops(repo, "render", "--env", "prod").stdout)
        before = documents(renders["prod"])
        changed = [(a["kind"], a["metadata"]["name"]) for a, b in zip(before, prod, strict=True) if a != b]
        assert changed == [("HorizontalPodAutoscaler", "pod-details")], "the overlay's change, nothing else"
        hpa = next(d for d in prod if d["kind"] == "HorizontalPodAutoscaler")
        assert hpa["spec"]["minReplicas"] == 4
        svc = next(d for d in prod if d["kind"] == "Service")
        assert "annotations" not in svc["metadata"], "the chart change on main is not prod's until promoted"
    finally:
        service.write_text(chart_before)
        values.write_text(values_before)


def test_a_missing_chart_copy_fails_naming_the_folder(repo: Path):
    chart = repo / "environments/prod/pod-details/chart"
    moved = repo.parent / "chart-aside"
    chart.rename(moved)
    try:
        proc = gitops(repo, "render", "--env", "prod", ok=False)
        assert proc.returncode == 1
        assert "source path environments/prod/pod-details/chart does not exist" in proc.stderr
    finally:
        moved.rename(chart)
