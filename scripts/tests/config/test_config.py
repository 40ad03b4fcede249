"""The GitOps configuration: the environments (how each renders the pod-details chart with its overlay and release),
the platform and the clusters. The chart on its own — values schema, hardening defaults, RBAC, network policies —
is tested with the app (apps/pod-details/tests/test_chart.py), so every app `gitops new-app` makes gets those tests.

Rendering and linting use the pinned Helm (the engine Argo CD bundles); manifests are checked with kubeconform
against the pinned schemas; the admission policies run in a real kube-apiserver. A missing tool fails with the
command to build it, never a skip.
"""

from __future__ import annotations

import contextlib
import copy
import json
import re
import subprocess
import sys
import time
from functools import cache
from pathlib import Path

import pytest
import yaml
from kubernetes import config, dynamic
from kubernetes.client.rest import ApiException
from kubernetes.dynamic.exceptions import ConflictError

from gitops import model
from gitops.checks import rules
from gitops.toolchain import tool_path
from gitops.toolchain.schemas import schema_locations

# Renders with the pinned helm and checks with the pinned kubeconform and a real apiserver.
pytestmark = pytest.mark.toolchain

REPO = Path(__file__).resolve().parents[3]
CHART = REPO / "apps" / "pod-details" / "chart"
APP = "pod-details"
REPO_URL = "https://github.com/azurelaboratory/gitops-monorepo.git"
DIGEST = "sha256:" + "ab" * 32

ENVS = yaml.safe_load((REPO / "environments" / "promotion.yaml").read_text())["order"]
CLUSTERS = sorted(p.name for p in (REPO / "clusters").iterdir() if p.is_dir())


# --- helpers -----------------------------------------------------------------------------------------------------


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def load_all(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def env_file(env: str) -> dict:
    return load(REPO / "environments" / env / "env.yaml")


def release(env: str) -> dict:
    return load(REPO / "environments" / env / APP / "release.yaml")


def overlay(env: str) -> dict:
    return load(REPO / "environments" / env / APP / "values.yaml") or {}


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([str(tool_path("helm")), *args], capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        pytest.fail(f"helm {' '.join(args)} failed:\n{proc.stderr}")
    return proc


def image_args(env: str) -> list[str]:
    image = release(env)["image"]
    return [
        "--set-string",
        f"image.repository={image['repository']},image.tag={image['tag']},image.digest={image['digest']}",
    ]


def template_args(env: str, *extra: str) -> list[str]:
    values = str(REPO / "environments" / env / APP / "values.yaml")
    return ["template", APP, str(CHART), "--namespace", f"apps-{env}", "-f", values, *image_args(env), *extra]


@cache
def render(env: str, *extra: str) -> tuple[dict, ...]:
    """The chart on main with ``env``'s overlay and the image from its release.yaml: what dev runs, and what prod
    runs after its next promotion (prod's current copy is checked by `gitops validate`, checks/test_validate.py)."""
    return tuple(d for d in yaml.safe_load_all(helm(*template_args(env, *extra)).stdout) if d)


def kinds(docs) -> list[str]:
    return sorted(d["kind"] for d in docs)


def one(docs, kind: str, name: str | None = None) -> dict:
    found = [d for d in docs if d["kind"] == kind and name in (None, d["metadata"]["name"])]
    assert len(found) == 1, f"expected one {kind} {name or ''}, got {len(found)}"
    return found[0]


def container(docs) -> dict:
    return one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]


def kubeconform(paths: list[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    argv = [str(tool_path("kubeconform")), "-strict", "-summary", *schema_locations(), *paths]
    return subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False)


def manifests(root: Path) -> list[Path]:
    """Kubernetes manifests under root: everything but the data files (values, releases, env and cluster forms) and
    the charts promoted into environments (templates, checked once rendered: checks/test_validate.py)."""
    data = {"argocd-values.yaml", "cluster.yaml", "env.yaml", "release.yaml", "values.yaml", "promotion.yaml"}
    charts = {p.parent for p in root.rglob("Chart.yaml")}
    return sorted(
        p
        for p in root.rglob("*.yaml")
        if p.name not in data and not any(c in p.parents or c == p.parent for c in charts)
    )


def applications(path: Path) -> list[dict]:
    return [d for d in load_all(path) if d.get("kind") == "Application"]


def sources(app: dict) -> list[dict]:
    spec = app["spec"]
    return spec.get("sources") or [spec["source"]]


# --- the chart in each environment ------------------------------------------------------------------------------


@pytest.mark.parametrize("env", ENVS)
def test_chart_lints_strict_with_each_environment(env):
    values = str(REPO / "environments" / env / APP / "values.yaml")
    proc = helm("lint", "--strict", str(CHART), "-f", values, *image_args(env), check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 chart(s) failed" in proc.stdout


def hardening(docs) -> dict:
    """What makes the pod restricted: its and its container's security contexts, the token mount, /tmp's bound."""
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    return {
        "pod": pod["securityContext"],
        "container": pod["containers"][0]["securityContext"],
        "token": (pod["automountServiceAccountToken"], one(docs, "ServiceAccount")["automountServiceAccountToken"]),
        "volumes": [v for v in pod["volumes"] if "emptyDir" in v],
        "spread": pod["topologySpreadConstraints"],
    }


@pytest.mark.parametrize("env", ENVS)
def test_overlays_keep_the_charts_hardening(env):
    """The chart's tests hold its defaults to the restricted standard; an environment's overlay must not loosen them."""
    host = overlay(env)["hostnames"][0]
    chart_alone = helm(
        "template", APP, str(CHART), "--namespace", f"apps-{env}", *image_args(env), "--set", f"hostnames={{{host}}}"
    )
    assert hardening(render(env)) == hardening([d for d in yaml.safe_load_all(chart_alone.stdout) if d])


def test_dev_renders_a_fixed_single_replica_without_autoscaler_or_budget():
    docs = render("dev")
    assert "HorizontalPodAutoscaler" not in kinds(docs)
    assert "PodDisruptionBudget" not in kinds(docs)
    assert one(docs, "Deployment")["spec"]["replicas"] == 1
    assert container(docs)["resources"]["requests"] == {"cpu": "50m", "memory": "50M", "ephemeral-storage": "32Mi"}
    assert set(container(docs)["resources"]["limits"]) == {"cpu", "memory", "ephemeral-storage"}


def test_prod_leaves_replicas_to_the_autoscaler():
    docs = render("prod")
    assert "replicas" not in one(docs, "Deployment")["spec"]
    hpa = one(docs, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": APP}
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 100)
    assert hpa["spec"]["metrics"] == [
        {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}
    ]
    assert {"scaleUp", "scaleDown"} <= set(hpa["spec"]["behavior"])
    pdb = one(docs, "PodDisruptionBudget")
    assert pdb["spec"]["selector"] == one(docs, "Deployment")["spec"]["selector"]


@pytest.mark.parametrize("env", ENVS)
def test_http_route_attaches_to_the_shared_gateway_with_the_environment_host(env):
    route = one(render(env), "HTTPRoute")["spec"]
    assert route["parentRefs"] == [
        {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "edge", "namespace": "gateway"}
    ]
    assert route["hostnames"] == [f"{APP}-{env}.{env_file(env)['domain']}"]
    assert route["rules"][0]["backendRefs"] == [{"name": APP, "port": 80}]


@pytest.mark.parametrize("env", ENVS)
def test_rendered_manifests_match_the_pinned_schemas(env):
    out = helm(*template_args(env, "--set", "serviceMonitor.enabled=true,ingress.enabled=true,ingress.className=x"))
    proc = kubeconform(["-"], stdin=out.stdout)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_platform_and_cluster_manifests_match_the_pinned_schemas():
    files = [
        str(p) for p in manifests(REPO / "platform") + manifests(REPO / "clusters") + manifests(REPO / "environments")
    ]
    proc = kubeconform(files)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# --- environments -----------------------------------------------------------------------------------------------


def test_promotion_order_names_every_environment_folder():
    folders = sorted(p.name for p in (REPO / "environments").iterdir() if p.is_dir())
    assert sorted(ENVS) == folders


def test_environments_load_against_their_schemas_and_pass_the_repository_rules():
    # The forms of env.yaml, release.yaml and promotion.yaml are the model's schemas (scripts/tests/model); the
    # releases against the promotion order and the chart copies against their commits are the rules
    # (scripts/tests/checks/test_rules.py). Here: this repository's own files, through both.
    repo = model.load(REPO)
    assert list(repo.environments) == ENVS
    for env in repo.environments.values():
        assert (REPO / "clusters" / env.cluster).is_dir(), f"{env.name} names cluster {env.cluster}, not in clusters/"
    found, _ = rules.releases(repo, list(repo.environments))
    assert [f"{f.file}: {f.message}" for f in found] == []


@pytest.mark.parametrize("env", ENVS)
def test_overlay_sets_the_environment_hostname(env):
    assert overlay(env)["hostnames"] == [f"{APP}-{env}.{env_file(env)['domain']}"]


def appset(env: str) -> dict:
    return load(REPO / "environments" / env / "applicationset.yaml")


@pytest.mark.parametrize("env", ENVS)
def test_applicationset_follows_the_agreed_shape(env):
    spec = appset(env)["spec"]
    assert spec["goTemplate"] is True
    assert spec["goTemplateOptions"] == ["missingkey=error"]
    (gen,) = spec["generators"]
    assert gen["git"]["repoURL"] == REPO_URL
    assert gen["git"]["files"] == [{"path": f"environments/{env}/*/release.yaml"}]
    tpl = spec["template"]
    assert tpl["metadata"]["name"] == f"{{{{ .path.basename }}}}-{env}"
    app = tpl["spec"]
    assert app["project"] == "apps"
    assert app["destination"]["namespace"] == env_file(env)["namespace"]
    chart, values = app["sources"]
    assert chart["repoURL"] == values["repoURL"] == REPO_URL
    if env == ENVS[0]:
        assert chart["path"] == "apps/{{ .path.basename }}/chart"
    else:
        assert chart["path"] == f"environments/{env}/{{{{ .path.basename }}}}/chart", "the promoted copy"
    assert chart["targetRevision"] == "main", "every environment is read at main"
    assert chart["helm"]["valueFiles"] == [f"$values/environments/{env}/{{{{ .path.basename }}}}/values.yaml"]
    assert chart["helm"]["valuesObject"]["image"] == {
        "repository": "{{ .image.repository }}",
        "tag": "{{ .image.tag }}",
        "digest": "{{ .image.digest }}",
    }
    # One repository, one revision: Argo CD refuses an Application whose sources read it at two (argo-cd#12159).
    assert values == {"repoURL": REPO_URL, "targetRevision": chart["targetRevision"], "ref": "values"}
    assert "CreateNamespace=false" in app["syncPolicy"]["syncOptions"]


@pytest.mark.parametrize("env", ENVS)
def test_applicationset_templates_use_plain_field_access_only(env):
    text = (REPO / "environments" / env / "applicationset.yaml").read_text()
    expressions = re.findall(r"\{\{.*?\}\}", text)
    assert expressions
    bad = [e for e in expressions if not re.fullmatch(r"\{\{ \.[A-Za-z_]\w*(\.[A-Za-z_]\w*)* \}\}", e)]
    assert not bad, f"only {{{{ .a.b }}}} expressions are rendered like Argo CD: {bad}"


def test_prod_is_protected_from_deletion_and_autoscaler_drift():
    spec = appset("prod")["spec"]
    assert spec["syncPolicy"] == {"applicationsSync": "create-update", "preserveResourcesOnDeletion": True}
    app = spec["template"]["spec"]
    assert {"group": "apps", "kind": "Deployment", "jsonPointers": ["/spec/replicas"]} in app["ignoreDifferences"]
    assert "RespectIgnoreDifferences=true" in app["syncPolicy"]["syncOptions"]


def test_dev_announces_healthy_images():
    annotations = appset("dev")["spec"]["template"]["metadata"]["annotations"]
    assert "notifications.argoproj.io/subscribe.on-dev-healthy.github" in annotations
    notifications = load(REPO / "clusters" / env_file("dev")["cluster"] / "argocd-values.yaml")["notifications"]
    assert "trigger.on-dev-healthy" in notifications["triggers"]
    body = yaml.safe_load(notifications["templates"]["template.dev-healthy"])["webhook"]["github"]
    assert body["method"] == "POST" and body["path"].endswith("/dispatches")
    assert '"event_type": "dev-healthy"' in body["body"]


# --- clusters and platform --------------------------------------------------------------------------------------


def hosted(cluster: str) -> list[str]:
    return [env for env in ENVS if env_file(env)["cluster"] == cluster]


@pytest.mark.parametrize("cluster", CLUSTERS)
def test_cluster_form_agrees_with_the_environments(cluster):
    assert load(REPO / "clusters" / cluster / "cluster.yaml")["environments"] == hosted(cluster)


@pytest.mark.parametrize("cluster", CLUSTERS)
def test_cluster_defines_restricted_app_namespaces(cluster):
    namespaces = {
        d["metadata"]["name"]: d["metadata"]["labels"]
        for d in load_all(REPO / "clusters" / cluster / "namespaces.yaml")
    }
    assert sorted(namespaces) == sorted(env_file(env)["namespace"] for env in hosted(cluster))
    for env in hosted(cluster):
        labels = namespaces[env_file(env)["namespace"]]
        for mode in ("enforce", "audit", "warn"):
            assert labels[f"pod-security.kubernetes.io/{mode}"] == "restricted"
        assert labels["platform.azurelaboratory.com/apps"] == "true"
        assert labels["platform.azurelaboratory.com/environment"] == env


@pytest.mark.parametrize("cluster", CLUSTERS)
def test_gateway_has_a_tls_listener_for_every_hosted_hostname(cluster):
    gateway = load(REPO / "clusters" / cluster / "gateway.yaml")
    assert gateway["metadata"]["annotations"]["cert-manager.io/cluster-issuer"].startswith("letsencrypt-")
    listeners = gateway["spec"]["listeners"]
    http = [x for x in listeners if x["protocol"] == "HTTP"]
    assert [(x["name"], x["port"], x["allowedRoutes"]["namespaces"]["from"]) for x in http] == [("http", 80, "Same")]
    https = {x["hostname"]: x for x in listeners if x["protocol"] == "HTTPS"}
    wanted = {h for env in hosted(cluster) for h in overlay(env)["hostnames"]}
    assert set(https) == wanted
    for listener in https.values():
        assert listener["tls"]["certificateRefs"][0]["name"]
        assert listener["allowedRoutes"]["namespaces"]["selector"]["matchLabels"] == {
            "platform.azurelaboratory.com/apps": "true"
        }


def root(cluster: str) -> list[dict]:
    return load_all(REPO / "clusters" / cluster / "root.yaml")


def project(cluster: str, name: str) -> dict:
    return next(d for d in root(cluster) if d["kind"] == "AppProject" and d["metadata"]["name"] == name)


@pytest.mark.parametrize("cluster", CLUSTERS)
def test_apps_project_is_confined_to_app_namespaces(cluster):
    spec = project(cluster, "apps")["spec"]
    assert spec["sourceRepos"] == [REPO_URL]
    assert [d["namespace"] for d in spec["destinations"]] == ["apps-*"]
    assert spec["clusterResourceWhitelist"] == []
    blacklisted = {(k["group"], k["kind"]) for k in spec["namespaceResourceBlacklist"]}
    assert {("", "ResourceQuota"), ("argoproj.io", "*"), ("gateway.networking.k8s.io", "Gateway")} <= blacklisted


def test_prod_apps_project_freezes_automated_syncs_out_of_hours():
    cluster = env_file("prod")["cluster"]
    windows = project(cluster, "apps")["spec"]["syncWindows"]
    assert windows and all(w["kind"] == "deny" and w["manualSync"] is True for w in windows)
    friday = next(w for w in windows if w["schedule"].endswith("* * 5"))
    assert (friday["schedule"], friday["duration"]) == ("0 16 * * 5", "62h")  # Friday 16:00 to Monday 06:00
    assert "syncWindows" not in project(env_file("dev")["cluster"], "apps")["spec"]


@pytest.mark.parametrize("cluster", CLUSTERS)
def test_root_brings_in_the_hosted_environments_and_the_platform(cluster):
    (envs,) = load_all(REPO / "clusters" / cluster / "environments.yaml")
    assert envs["kind"] == "ApplicationSet"
    (gen,) = envs["spec"]["generators"]
    assert gen["git"]["files"] == [{"path": "environments/*/env.yaml"}]
    assert gen["selector"]["matchLabels"] == {"cluster": cluster}
    assert envs["spec"]["template"]["spec"]["source"]["directory"]["include"] == "applicationset.yaml"
    apps = {a["metadata"]["name"]: a for a in applications(REPO / "clusters" / cluster / "root.yaml")}
    assert apps["platform"]["spec"]["source"]["path"] == "platform"
    assert apps["root"]["spec"]["source"]["path"] == f"clusters/{cluster}"
    # root's waves wait for each child's sync (clusters/argocd-values.yaml), never for root's own.
    assert apps["root"]["metadata"]["annotations"]["platform.azurelaboratory.com/applies-itself"] == "true"
    assert not [
        n
        for n, a in apps.items()
        if n != "root" and "platform.azurelaboratory.com/applies-itself" in (a["metadata"].get("annotations") or {})
    ]


def wave(doc: dict) -> int:
    return int((doc["metadata"].get("annotations") or {}).get("argocd.argoproj.io/sync-wave", "0"))


@pytest.mark.parametrize("cluster", CLUSTERS)
def test_a_fresh_cluster_bootstraps_in_one_pass(cluster):
    """`kubectl apply -f root.yaml` creates everything root.yaml holds at once; root applies the rest of the folder in
    sync waves. The environments (whose apps need their namespace, the Gateway and the platform's CRDs and policies)
    must come last, from root only, or every app fails its first syncs and backs off (`make e2e` counts them)."""
    folder = REPO / "clusters" / cluster
    (root_app,) = [a for a in applications(folder / "root.yaml") if a["metadata"]["name"] == "root"]
    included = set(root_app["spec"]["source"]["directory"]["include"].strip("{}").split(","))
    manifests = {p.name for p in folder.glob("*.yaml")} - {"cluster.yaml", "argocd-values.yaml"}
    assert included == manifests, "root applies every manifest of its folder, and only those"
    assert not [d for d in root(cluster) if d["kind"] == "ApplicationSet"], "kubectl apply would create it at once"
    (envs,) = load_all(folder / "environments.yaml")
    before = [d for f in sorted(manifests - {"environments.yaml"}) for d in load_all(folder / f)]
    latest = max(wave(d) for d in before)
    assert wave(envs) > latest, f"the environments ApplicationSet must come after every other wave of root ({latest})"


def upstream_applications() -> list[tuple[str, dict]]:
    found = []
    for path in sorted((REPO / "platform").rglob("*.yaml")) + [REPO / "clusters" / c / "root.yaml" for c in CLUSTERS]:
        for app in applications(path):
            for source in sources(app):
                if source["repoURL"] != REPO_URL:
                    found.append((f"{path.relative_to(REPO)}:{app['metadata']['name']}", source))
    return found


@pytest.mark.parametrize(("where", "source"), upstream_applications(), ids=lambda v: v if isinstance(v, str) else "")
def test_upstream_sources_are_pinned_and_allowed(where, source):
    assert re.fullmatch(r"v?\d+\.\d+\.\d+", str(source["targetRevision"])), f"{where} is not pinned"
    for cluster in CLUSTERS:
        assert source["repoURL"] in project(cluster, "platform")["spec"]["sourceRepos"], f"{where} in {cluster}"


def test_yaml_passes_yamllint():
    # Paths relative to the repository, as pre-commit passes them: .yamllint's ignore patterns are relative too.
    paths = ["environments", "platform", "clusters"]
    paths += [str((CHART / name).relative_to(REPO)) for name in ("values.yaml", "Chart.yaml")]
    proc = subprocess.run(
        [sys.executable, "-m", "yamllint", "--strict", "-c", ".yamllint", *paths],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


# --- admission policies in a real apiserver ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def dyn(kube_cluster) -> dynamic.DynamicClient:
    return dynamic.DynamicClient(config.new_client_from_config(str(kube_cluster.kubeconfig)))


def create(dyn: dynamic.DynamicClient, doc: dict, namespace: str | None = None, dry_run: bool = False):
    resource = dyn.resources.get(api_version=doc["apiVersion"], kind=doc["kind"])
    kwargs = {"dry_run": "All"} if dry_run else {}
    return resource.create(body=doc, namespace=namespace or doc["metadata"].get("namespace"), **kwargs)


def ensure(dyn: dynamic.DynamicClient, doc: dict, namespace: str | None = None) -> None:
    """Create `doc` unless it exists: the control plane is the session's, and `gitops validate --live` applies the
    same policies and namespaces to it."""
    with contextlib.suppress(ConflictError):
        create(dyn, doc, namespace)


def denial(dyn, doc: dict, namespace: str, within: float = 30.0) -> str:
    """The apiserver's refusal of `doc`. Each policy is loaded by the apiserver on its own schedule, so a policy
    created a moment ago may not be enforced yet: retry until it is, or fail after `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        try:
            create(dyn, doc, namespace, dry_run=True)
        except ApiException as err:
            return json.loads(err.body)["message"]
        if time.monotonic() > deadline:
            pytest.fail(f"{doc['kind']} {doc['metadata'].get('name')} was admitted in {namespace} for {within:.0f}s")
        time.sleep(0.5)


@pytest.fixture(scope="module")
def policies(dyn) -> dict[str, str]:
    """platform/policies/ and every cluster's app namespaces, applied; returns {env: namespace}."""
    for path in sorted((REPO / "platform" / "policies").glob("*.yaml")):
        for doc in load_all(path):
            ensure(dyn, doc)
    for cluster in CLUSTERS:
        for doc in load_all(REPO / "clusters" / cluster / "namespaces.yaml"):
            ensure(dyn, doc)
            # Pod admission looks the ServiceAccount up; no controller-manager runs to create `default`.
            sa = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}}
            ensure(dyn, sa, doc["metadata"]["name"])
    namespaces = {env: env_file(env)["namespace"] for env in ENVS}
    # Policies take effect asynchronously: wait until a known violation is refused.
    hpa = copy.deepcopy(one(render("prod"), "HorizontalPodAutoscaler"))
    hpa["spec"]["maxReplicas"] = 1000
    deadline = time.monotonic() + 30
    while True:
        try:
            create(dyn, hpa, namespaces["prod"], dry_run=True)
        except ApiException:
            break
        assert time.monotonic() < deadline, "admission policies did not take effect within 30 s"
        time.sleep(0.5)
    return namespaces


@pytest.mark.parametrize("env", ENVS)
def test_policies_admit_the_chart_as_rendered(dyn, policies, env):
    for doc in render(env):
        if doc["kind"] in ("HTTPRoute",):  # no Gateway API CRDs in this apiserver
            continue
        # Server-side apply, as Argo CD syncs and `gitops validate --live` checks: the ServiceAccount may exist.
        resource = dyn.resources.get(api_version=doc["apiVersion"], kind=doc["kind"])
        dyn.server_side_apply(resource, body=doc, namespace=policies[env], field_manager="test", dry_run="All")


def mutated_deployment(change) -> dict:
    deployment = copy.deepcopy(one(render("prod"), "Deployment"))
    spec = deployment["spec"]["template"]["spec"]
    change(spec["containers"][0], spec)
    return deployment


WORKLOAD_VIOLATIONS = {
    "no-limits": (lambda c, s: c["resources"].pop("limits"), "apps-container-resources", "resources.limits"),
    "no-cpu-request": (lambda c, s: c["resources"]["requests"].pop("cpu"), "apps-container-resources", "cpu"),
    "no-readiness": (lambda c, s: c.pop("readinessProbe"), "apps-container-probes", "readinessProbe"),
    "no-liveness": (lambda c, s: c.pop("livenessProbe"), "apps-container-probes", "livenessProbe"),
    "latest": (lambda c, s: c.update(image="docker.io/x/y:latest"), "apps-image-pinning", "(docker.io/x/y:latest)"),
    "no-tag": (lambda c, s: c.update(image="registry:5000/x/y"), "apps-image-pinning", "(registry:5000/x/y)"),
    "privileged": (
        lambda c, s: c["securityContext"].update(privileged=True, allowPrivilegeEscalation=True),
        "apps-workload-isolation",
        "must not be privileged",
    ),
    "host-network": (lambda c, s: s.update(hostNetwork=True), "apps-workload-isolation", "hostNetwork"),
    "host-pid": (lambda c, s: s.update(hostPID=True), "apps-workload-isolation", "hostPID"),
}


@pytest.mark.parametrize("violation", sorted(WORKLOAD_VIOLATIONS))
@pytest.mark.parametrize("env", ENVS)
def test_policies_refuse_unsafe_workloads_with_a_clear_message(dyn, policies, env, violation):
    change, policy, detail = WORKLOAD_VIOLATIONS[violation]
    message = denial(dyn, mutated_deployment(change), policies[env])
    assert f"ValidatingAdmissionPolicy '{policy}'" in message
    assert "Deployment pod-details" in message and detail in message


def test_digest_pinned_images_are_admitted(dyn, policies):
    create(
        dyn, mutated_deployment(lambda c, s: c.update(image=f"docker.io/x/y@{DIGEST}")), policies["prod"], dry_run=True
    )


def test_privileged_bare_pods_are_refused_even_without_pod_security(dyn, policies):
    """Pod Security refuses first in app namespaces; the policy still holds where its label was loosened."""
    loosened = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": "apps-loosened", "labels": {"platform.azurelaboratory.com/apps": "true"}},
    }
    create(dyn, loosened)
    create(dyn, {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}}, "apps-loosened")
    pod = copy.deepcopy(one(render("dev"), "Pod"))
    create(dyn, pod, "apps-loosened", dry_run=True)
    pod["spec"]["containers"][0]["securityContext"].update(privileged=True, allowPrivilegeEscalation=True)
    message = denial(dyn, pod, "apps-loosened")
    assert "ValidatingAdmissionPolicy 'apps-pod-isolation'" in message
    assert "Pod pod-details-test-connection: container(s) curl must not be privileged" in message
    pod["spec"]["containers"][0]["securityContext"].pop("privileged")
    pod["spec"]["hostIPC"] = True
    assert "hostIPC must be unset or false" in denial(dyn, pod, "apps-loosened")


def mutated_hpa(**spec) -> dict:
    hpa = copy.deepcopy(one(render("prod"), "HorizontalPodAutoscaler"))
    hpa["spec"].update(spec)
    return hpa


def cpu_target(value: int) -> list[dict]:
    return [
        {
            "type": "Resource",
            "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": value}},
        }
    ]


@pytest.mark.parametrize("env", ENVS)
@pytest.mark.parametrize(
    ("spec", "detail"),
    [
        ({"maxReplicas": 101}, "spec.maxReplicas is 101, the platform allows at most 100"),
        ({"metrics": cpu_target(95)}, "averageUtilization between 50 and 90, got Utilization 95%"),
        ({"metrics": cpu_target(40)}, "averageUtilization between 50 and 90, got Utilization 40%"),
    ],
)
def test_hpa_bounds_hold_everywhere(dyn, policies, env, spec, detail):
    message = denial(dyn, mutated_hpa(**spec), policies[env])
    assert "apps-hpa-bounds" in message and detail in message


def test_prod_needs_two_replicas_and_dev_does_not(dyn, policies):
    message = denial(dyn, mutated_hpa(minReplicas=1), policies["prod"])
    assert "apps-hpa-min-replicas-prod" in message and "spec.minReplicas is 1, prod requires at least 2" in message
    create(dyn, mutated_hpa(minReplicas=1), policies["dev"], dry_run=True)


def test_the_bootstrap_steps_name_the_argo_cd_and_chart_every_cluster_runs():
    """The first-install steps (clusters/argocd-values.yaml, the runbook) apply Argo CD's CRDs of the release every
    cluster runs, and root.yaml's `argocd-crds` follows the same release: a bootstrap never starts a version behind."""
    tag = yaml.safe_load((REPO / "clusters" / "argocd-values.yaml").read_text())["global"]["image"]["tag"]
    mentioned = {
        f"{path.relative_to(REPO)}: {ref}"
        for path in [REPO / "clusters" / "argocd-values.yaml", *sorted((REPO / "docs").rglob("*.md"))]
        for ref in re.findall(r"argo-cd/manifests/crds\?ref=(v[0-9.]+)", path.read_text())
    }
    assert mentioned, "no first-install step names Argo CD's CRDs"
    assert all(m.endswith(f": {tag}") for m in mentioned), f"Argo CD runs {tag}; the steps say {sorted(mentioned)}"
    for cluster in CLUSTERS:
        apps = {a["metadata"]["name"]: a for a in applications(REPO / "clusters" / cluster / "root.yaml")}
        assert apps["argocd-crds"]["spec"]["source"]["targetRevision"] == tag, cluster
