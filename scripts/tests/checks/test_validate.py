"""`gitops validate`: the clean repository passes; each way of breaking it fails with a message naming the culprit."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from gitops.checks.validate import validate
from gitops.findings import Finding
from gitops_testing import sandbox

DEV = "environments/dev/pod-details"
PROD = "environments/prod/pod-details"
SCHEMA = "apps/pod-details/chart/values.schema.json"
CERT_MANAGER = "platform/cert-manager/cert-manager.yaml"
METRICS_SERVER = "platform/metrics-server/metrics-server.yaml"


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def set_value(path: Path, dotted: str, value: object) -> None:
    """Set a key in a YAML file, comments kept (ruamel round trip)."""
    from ruamel.yaml import YAML

    y = YAML()
    data = y.load(path.read_text()) or {}
    *parents, last = dotted.split(".")
    node = data
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value
    with path.open("w") as f:
        y.dump(data, f)


def line_of(path: Path, needle: str) -> int:
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


def cli(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gitops", "validate", *args], cwd=repo, capture_output=True, text=True, timeout=600
    )


def matching(findings: list[Finding], check: str, fragment: str) -> list[Finding]:
    return [f for f in findings if f.check == check and fragment in f.message]


def test_the_clean_repository_passes(repo, helm, upstream_chart_cache):
    proc = cli(repo.path, "--format", "json")
    report = json.loads(proc.stdout)
    assert report["problems"] == [], proc.stdout
    assert proc.returncode == 0
    assert report["checks"] == [
        "yamllint",
        "schema",
        "values-schema",
        "helm-lint",
        "chart-values",
        "kubeconform",
        "repo-rules",
    ]
    assert report["stats"]["environments"] == 2
    assert report["stats"]["applications"] == 2


def test_every_run_names_the_charts_it_could_not_check(repo, helm, upstream_chart_cache):
    """Charts that cannot be had here are said by name on every run, in the text and in the JSON: never a silent pass.
    The ones that can are not among them: their rendered objects are validated (kubeconform counts them)."""
    proc = cli(repo.path)
    assert proc.returncode == 0, proc.stdout
    notes = [line for line in proc.stdout.splitlines() if line.startswith("note: ")]
    not_checked = "values not checked against the chart: not obtainable here"
    expected = {
        f"note: platform/gateway/nginx-gateway-fabric.yaml Application/nginx-gateway-fabric: {not_checked}",
        f"note: clusters/aks-dev/root.yaml Application/argocd: {not_checked}",
        f"note: clusters/aks-prod/root.yaml Application/argocd: {not_checked}",
    }
    assert {n.split(" (", 1)[0] for n in notes} == expected, proc.stdout
    assert proc.stdout.strip().splitlines()[-1].startswith("no problems")
    report = json.loads(cli(repo.path, "--format", "json").stdout)
    assert len(report["notes"]) == 3
    assert validate(repo.path, ["dev"]).notes == []  # the platform is not validated for one environment


@dataclass
class Variant:
    name: str
    breaks: Callable[[Path], None]
    check: str
    fragment: str
    file: str
    line: Callable[[Path], int | None] | None = None  # expected line, computed on the broken tree
    kind: str = ""
    application: str = ""  # a platform Application: the one named in the finding


def _platform_application(root: Path) -> None:
    edit(
        root / "platform/metrics-server/metrics-server.yaml",
        "  project: platform\n",
        "  project: platform\n  revisionHistoryLimit: ten\n",
    )


def _values_object(path: str, after: str, added: str) -> Callable[[Path], None]:
    """Add lines to an Application's valuesObject, right after the (unique) line ``after``."""

    def breaks(root: Path) -> None:
        edit(root / path, after, after + added)

    return breaks


def _widget(root: Path) -> None:
    (root / "platform/widgets").mkdir()
    (root / "platform/widgets/widget.yaml").write_text(
        "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w\n"
    )


VARIANTS = [
    Variant(
        "yaml-syntax-error",
        lambda r: (r / DEV / "values.yaml").write_text(
            "hostnames:\n  - pod-details-dev.azurelaboratory.com\n  oops: [\n"
        ),
        "yamllint",
        "syntax error",
        f"{DEV}/values.yaml",
    ),
    Variant(
        "duplicate-key",
        lambda r: (r / DEV / "values.yaml").write_text(
            (r / DEV / "values.yaml").read_text() + "hostnames:\n  - b.example.com\n"
        ),
        "yamllint",
        'duplication of key "hostnames" in mapping',
        f"{DEV}/values.yaml",
        lambda r: 1 + (r / DEV / "values.yaml").read_text().splitlines().index("hostnames:", 2),
    ),
    Variant(
        "unknown-field-in-deployment",
        lambda r: edit(
            r / "apps/pod-details/chart/templates/deployment.yaml",
            "  revisionHistoryLimit: 5\n",
            "  revisionHistoryLimit: 5\n  replicaz: 2\n",
        ),
        "kubeconform",
        "/spec: additional properties 'replicaz' not allowed",
        "apps/pod-details/chart/templates/deployment.yaml",
        kind="Deployment",
    ),
    Variant(
        "typo-in-an-overlay-key",
        lambda r: (r / DEV / "values.yaml").write_text((r / DEV / "values.yaml").read_text() + "replicaCont: 2\n"),
        "values-schema",
        "additional properties 'replicaCont' not allowed",
        f"{DEV}/values.yaml",
        lambda r: line_of(r / DEV / "values.yaml", "replicaCont"),
    ),
    Variant(
        "wrong-type-in-an-application",
        _platform_application,
        "kubeconform",
        "/spec/revisionHistoryLimit",
        "platform/metrics-server/metrics-server.yaml",
        lambda r: line_of(r / "platform/metrics-server/metrics-server.yaml", "revisionHistoryLimit"),
        kind="Application",
    ),
    # The platform's Applications of upstream charts, against the real charts pinned in the toolchain.
    Variant(
        "cert-manager-misspelled-key",
        _values_object(CERT_MANAGER, "          keep: true\n", "          enabeld: true\n"),
        "values-schema",
        "values /crds: additional properties 'enabeld' not allowed (schema github.com/cert-manager/cert-manager@",
        CERT_MANAGER,
        lambda r: line_of(r / CERT_MANAGER, "enabeld"),
        kind="Application",
        application="cert-manager",
    ),
    Variant(
        "cert-manager-wrong-type",
        _values_object(CERT_MANAGER, "        cainjector:\n", '          enabled: "yes"\n'),
        "values-schema",
        "values /cainjector/enabled: got string, want boolean",
        CERT_MANAGER,
        lambda r: line_of(r / CERT_MANAGER, 'enabled: "yes"'),
        kind="Application",
        application="cert-manager",
    ),
    Variant(
        "metrics-server-misspelled-key",
        _values_object(METRICS_SERVER, "          enabled: true\n", "          minAvailble: 1\n"),
        "chart-values",
        "values /podDisruptionBudget/minAvailble: unknown key 'minAvailble': did you mean minAvailable",
        METRICS_SERVER,
        lambda r: line_of(r / METRICS_SERVER, "minAvailble"),
        kind="Application",
        application="metrics-server",
    ),
    Variant(
        "metrics-server-wrong-type",
        lambda r: edit(r / METRICS_SERVER, "        replicas: 2\n", "        replicas: {count: 2}\n"),
        "chart-values",
        "values /replicas: expected a number (the chart's default is 1), got a map",
        METRICS_SERVER,
        lambda r: line_of(r / METRICS_SERVER, "replicas: {count"),
        kind="Application",
        application="metrics-server",
    ),
    Variant(
        "chart-version-not-pinned",
        lambda r: edit(r / CERT_MANAGER, "    targetRevision: v1.21.2\n", "    targetRevision: v1.99.0\n"),
        "render",
        "chart cert-manager v1.99.0 from https://charts.jetstack.io: no such version is pinned",
        CERT_MANAGER,
        lambda r: line_of(r / CERT_MANAGER, "targetRevision: v1.99.0"),
        kind="Application",
        application="cert-manager",
    ),
    Variant(
        "unknown-kind",
        _widget,
        "kubeconform",
        "unknown kind example.com/v1 Widget",
        "platform/widgets/widget.yaml",
        kind="Widget",
    ),
    Variant(
        "missing-release",
        lambda r: (r / DEV / "release.yaml").unlink(),
        "repo-rules",
        "missing release.yaml",
        f"{DEV}/release.yaml",
    ),
    Variant(
        "image-tag-latest",
        lambda r: set_value(r / DEV / "release.yaml", "image.tag", "latest"),
        "schema",
        "`image.tag` is 'latest': expected an immutable tag, quoted (never `latest`, never empty)",
        f"{DEV}/release.yaml",
        lambda r: line_of(r / DEV / "release.yaml", "tag:"),
    ),
    Variant(
        "prod-overlay-typo",
        lambda r: edit(r / PROD / "values.yaml", "  maxReplicas: 100\n", "  maxReplicas: 100\n  maxReplica: 7\n"),
        "values-schema",
        "additional properties 'maxReplica' not allowed",
        f"{PROD}/values.yaml",
        lambda r: line_of(r / PROD / "values.yaml", "maxReplica:"),
    ),
    Variant(
        "prod-overlay-over-the-ceiling",
        lambda r: edit(r / PROD / "values.yaml", "maxReplicas: 100", "maxReplicas: 300"),
        "values-schema",
        "maximum",
        f"{PROD}/values.yaml",
        lambda r: line_of(r / PROD / "values.yaml", "maxReplicas:"),
    ),
    Variant(
        "prod-chart-edited-by-hand",
        lambda r: edit(r / PROD / "chart/templates/service.yaml", "metadata:", "metadata:\n  # edited in place"),
        "repo-rules",
        "is not the chart this release names",
        f"{PROD}/chart",
    ),
    Variant(
        "prod-chart-commit-that-does-not-exist",
        lambda r: set_value(r / PROD / "release.yaml", "chart.commit", "deadbeef" * 5),
        "repo-rules",
        f"chart.commit {'deadbeef' * 5} names no commit in this repository",
        f"{PROD}/release.yaml",
        lambda r: line_of(r / PROD / "release.yaml", "commit:"),
    ),
    Variant(
        "prod-chart-tree-that-no-commit-had",
        lambda r: set_value(
            r / PROD / "release.yaml", "chart.tree", _git(r, "rev-parse", "HEAD:apps/pod-details/chart/templates")
        ),
        "repo-rules",
        "the release names a chart no commit of apps/pod-details/chart had",
        f"{PROD}/release.yaml",
        lambda r: line_of(r / PROD / "release.yaml", "tree:"),
    ),
    Variant(
        "prod-overlay-without-a-release",
        lambda r: (r / PROD / "release.yaml").unlink(),
        "repo-rules",
        "pod-details was removed from prod without its folder",
        f"{PROD}/release.yaml",
    ),
    Variant(
        "dev-release-naming-a-chart",
        lambda r: edit(r / DEV / "release.yaml", 'digest: ""\n', 'digest: ""\nchart:\n  revision: main\n'),
        "repo-rules",
        "chart.revision is the release format from before promoted charts were copied",
        f"{DEV}/release.yaml",
        lambda r: line_of(r / DEV / "release.yaml", "revision:"),
    ),
    Variant(
        "prod-read-at-another-revision",
        lambda r: edit(r / "environments/prod/applicationset.yaml", "targetRevision: main", "targetRevision: v1"),
        "repo-rules",
        "reads this repository at 'v1'",
        "environments/prod/applicationset.yaml",
    ),
    Variant(
        "prod-rendering-the-chart-on-main",
        lambda r: edit(
            r / "environments/prod/applicationset.yaml",
            "path: 'environments/prod/{{ .path.basename }}/chart'",
            "path: 'apps/{{ .path.basename }}/chart'",
        ),
        "repo-rules",
        "renders apps/pod-details/chart; prod runs its promoted copy, environments/prod/pod-details/chart",
        "environments/prod/applicationset.yaml",
    ),
]


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout.strip()


@pytest.mark.parametrize("variant", VARIANTS, ids=[v.name for v in VARIANTS])
def test_each_breakage_fails_with_the_right_message(repo, helm, upstream_chart_cache, variant: Variant):
    variant.breaks(repo.path)
    report = validate(repo.path)
    assert not report.ok
    hits = matching(report.findings, variant.check, variant.fragment)
    assert hits, "\n".join(map(str, report.findings))
    hit = hits[0]
    assert hit.file == variant.file, hit
    if variant.line:
        assert hit.line == variant.line(repo.path), hit
    if variant.kind:
        assert hit.kind == variant.kind, hit
    if variant.application:
        assert hit.name == variant.application, hit
    if variant.file.startswith("environments/"):
        assert (hit.env, hit.app) == (variant.file.split("/")[1], "pod-details"), hit


def test_every_problem_is_reported_at_once_and_the_exit_code_says_so(repo, helm, upstream_chart_cache):
    by_name = {v.name: v for v in VARIANTS}
    for name in ("typo-in-an-overlay-key", "unknown-kind", "metrics-server-misspelled-key"):
        by_name[name].breaks(repo.path)
    (repo.path / PROD / "values.yaml").unlink()  # a release without its overlay
    proc = cli(repo.path)
    assert proc.returncode == 1
    out = proc.stdout
    assert "values-schema: 1 problem" in out
    assert "kubeconform: 1 problem" in out
    assert "repo-rules:" in out
    assert "additional properties 'replicaCont' not allowed" in out
    assert "missing values.yaml" in out
    assert "unknown kind example.com/v1 Widget" in out
    line = line_of(repo.path / METRICS_SERVER, "minAvailble")
    assert f"  {METRICS_SERVER}:{line} Application/metrics-server: values /podDisruptionBudget/minAvailble:" in out
    assert out.strip().splitlines()[-1].startswith("4 problems in 4 checks")


def test_scoping_to_an_environment_and_to_changed_files(repo, helm):
    (repo.path / DEV / "values.yaml").write_text((repo.path / DEV / "values.yaml").read_text() + "replicaCont: 2\n")
    assert validate(repo.path, ["prod"]).ok
    assert not validate(repo.path, ["dev"]).ok
    assert validate(repo.path, changed=["README.md"]).checks == []
    changed = validate(repo.path, changed=[f"{DEV}/values.yaml"])
    assert changed.stats["environments"] == 1 and not changed.ok
    proc = cli(repo.path, "--env", "staging")
    assert proc.returncode == 1 and "no environment 'staging'" in proc.stderr
    proc = cli(repo.path, "prod")
    assert proc.returncode == 2 and "'prod' is an environment, not a file: validate it with --env prod" in proc.stderr
    proc = cli(repo.path, "environments/nope.yaml")
    assert proc.returncode == 2 and "'environments/nope.yaml': no such file" in proc.stderr


def test_a_prod_overlay_change_is_validated_on_the_commit_that_makes_it(repo, helm):
    """The pre-commit hook's form: the changed overlay alone, against the chart prod runs."""
    edit(repo.path / PROD / "values.yaml", "  maxReplicas: 100\n", "  maxReplicas: 100\n  maxReplica: 7\n")
    proc = cli(repo.path, f"{PROD}/values.yaml")  # as pre-commit passes a changed file
    assert proc.returncode == 1, proc.stdout
    assert f"prod/pod-details {PROD}/values.yaml:" in proc.stdout
    assert "additional properties 'maxReplica' not allowed" in proc.stdout
    assert "1 environment(s)" in proc.stdout


def test_a_chart_change_on_main_validates_the_environment_that_runs_it(repo, helm):
    edit(repo.path / "apps/pod-details/chart/values.yaml", "podAnnotations: {}", "podAnnotations: []")
    report = validate(repo.path, changed=["apps/pod-details/chart/values.yaml"])
    assert report.stats["environments"] == 1, "only dev runs apps/<app>/chart; prod runs its copy"
    assert not report.ok


def test_a_shallow_clone_renders_and_validates_every_environment(repo, helm, tmp_path):
    """Everything an environment runs is at HEAD: `actions/checkout`'s default depth is enough."""
    shallow = tmp_path / "shallow"
    _git(tmp_path, "clone", "--quiet", "--depth", "1", f"file://{repo.path}", str(shallow))
    assert _git(shallow, "rev-parse", "--is-shallow-repository") == "true"
    for env in ("dev", "prod"):
        proc = subprocess.run(
            [sys.executable, "-m", "gitops", "render", "--env", env],
            cwd=shallow,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stderr
    proc = cli(shallow, "--format", "json")
    report = json.loads(proc.stdout)
    assert proc.returncode == 0 and report["ok"], proc.stdout
    assert any(
        "is not in this shallow clone, so whether apps/pod-details/chart had this tree there is not checked" in n
        for n in report["notes"]
    ), report["notes"]
    edit(shallow / PROD / "chart/values.yaml", "podAnnotations: {}", "podAnnotations: {a: b}")
    broken = json.loads(cli(shallow, "--env", "prod", "--format", "json").stdout)
    assert any("is not the chart this release names" in p["message"] for p in broken["problems"])


# -- --live: the platform's admission policies on a real API server ----------------------------------------------


def loosen_schema(root: Path) -> None:
    """A chart whose schema no longer guards what the platform's policies guard: the policies are the last line."""
    schema = json.loads((root / SCHEMA).read_text())
    props = schema["properties"]
    props["autoscaling"]["properties"]["maxReplicas"].pop("maximum")
    props["resources"]["required"] = ["requests"]
    props["image"]["properties"]["tag"].pop("not")
    (root / SCHEMA).write_text(json.dumps(schema, indent=2) + "\n")


def promote_chart_to_prod(repo) -> None:
    head = repo.commit_all("chart: a looser schema")
    sandbox.copy_charts(repo.path, "prod", head)


def hpa_max_500(repo) -> None:
    loosen_schema(repo.path)
    promote_chart_to_prod(repo)  # prod runs its own copy of the chart: give it the looser one
    set_value(repo.path / PROD / "values.yaml", "autoscaling.enabled", True)
    set_value(repo.path / PROD / "values.yaml", "autoscaling.maxReplicas", 500)


def no_limits(repo) -> None:
    loosen_schema(repo.path)
    set_value(repo.path / DEV / "values.yaml", "resources.limits", None)


def latest_image(repo) -> None:
    loosen_schema(repo.path)
    set_value(repo.path / DEV / "release.yaml", "image.tag", "latest")


POLICY_VARIANTS = [
    (
        "prod-hpa-max-500",
        hpa_max_500,
        "prod",
        "HorizontalPodAutoscaler",
        "spec.maxReplicas is 500, the platform allows at most 100",
    ),
    (
        "container-without-limits",
        no_limits,
        "dev",
        "Deployment",
        "must set resources.requests and resources.limits for both cpu and memory",
    ),
    (
        "latest-image",
        latest_image,
        "dev",
        "Deployment",
        "must be pinned by digest (@sha256:...) or by an explicit tag other than latest",
    ),
]


def test_the_clean_repository_passes_live(repo, helm, kube_cluster):
    report = validate(repo.path, live_check=True, kubeconfig=kube_cluster.kubeconfig)
    assert report.findings == []
    assert report.checks[-1] == "live"


@pytest.mark.parametrize(
    ("name", "breaks", "env", "kind", "message"), POLICY_VARIANTS, ids=[v[0] for v in POLICY_VARIANTS]
)
def test_each_policy_violation_is_denied_live_with_the_policys_message(
    repo, helm, kube_cluster, name, breaks, env, kind, message
):
    breaks(repo)
    proc = cli(repo.path, "--live", "--kubeconfig", str(kube_cluster.kubeconfig), "--format", "json")
    assert proc.returncode == 1
    problems = json.loads(proc.stdout)["problems"]
    denied = [p for p in problems if p["check"] == "live" and message in p["message"]]
    assert denied, json.dumps(problems, indent=2)
    (p,) = denied
    assert (p["env"], p["app"], p["kind"], p["name"]) == (env, "pod-details", kind, "pod-details")
    assert "ValidatingAdmissionPolicy 'apps-" in p["message"]
    chart = "apps/pod-details/chart" if env == "dev" else f"environments/{env}/pod-details/chart"
    assert p["file"].startswith(f"{chart}/templates/"), "the template of the chart that environment runs"


def test_a_platform_charts_pods_are_held_to_their_namespaces_pod_security_live(
    repo, helm, kube_cluster, upstream_chart_cache
):
    """cert-manager's namespace enforces Pod Security `restricted`; a value that loosens its pods passes helm and
    kubeconform, and the Deployment itself is only warned about: the dry run of the Pod it would create is denied."""
    controller = "        replicaCount: 2\n        podDisruptionBudget:\n"  # not the webhook's or cainjector's
    loosened = "        containerSecurityContext:\n          allowPrivilegeEscalation: true\n"
    edit(repo.path / CERT_MANAGER, controller, loosened + controller)
    static = validate(repo.path)
    assert static.ok, "\n".join(map(str, static.findings))
    report = validate(repo.path, live_check=True, kubeconfig=kube_cluster.kubeconfig)
    denied = [f for f in report.findings if f.check == "live"]
    assert [(f.kind, f.name, f.app) for f in denied] == [("Deployment", "cert-manager", "cert-manager")], denied
    assert 'its pods would be rejected by the API server: pods "cert-manager-template" is forbidden: violates ' in (
        denied[0].message
    )
    assert "allowPrivilegeEscalation != false" in denied[0].message
    chart = "github.com/cert-manager/cert-manager@v1.21.2/deploy/charts/cert-manager"
    assert denied[0].file == f"{chart}/templates/deployment.yaml"


# -- helm lint, batched: findings land on the right app --------------------------------------------------------


def test_a_lint_only_problem_is_reported_for_its_own_app_when_charts_share_a_helm_process(repo, helm):
    import shutil

    shutil.copytree(repo.path / "apps/pod-details/chart", repo.path / "apps/other/chart")
    for env in ("dev", "prod"):
        shutil.copytree(repo.path / f"environments/{env}/pod-details", repo.path / f"environments/{env}/other")
        values = repo.path / f"environments/{env}/other/values.yaml"
        values.write_text(values.read_text().replace("pod-details-", "other-"))
    bad = repo.path / "apps/other/chart/templates/extra.yaml"
    bad.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-Not_A_Name\n")
    report = validate(repo.path, ["dev"])
    lint = [f for f in report.findings if f.check == "helm-lint"]
    assert [(f.env, f.app, f.file) for f in lint] == [("dev", "other", "apps/other/chart/templates/extra.yaml")], lint
    assert "object name does not conform to Kubernetes naming requirements" in lint[0].message


def test_values_are_coalesced_the_way_helm_does():
    from gitops.checks.helmlint import coalesce, merge_values

    user = merge_values({"a": {"b": 1, "c": 2}, "l": [1, 2]}, {"a": {"c": 3}, "l": [9], "n": None})
    assert user == {"a": {"b": 1, "c": 3}, "l": [9], "n": None}
    defaults = {"a": {"b": 0, "d": 4}, "n": {"x": 1}, "keep": True}
    # a user null deletes the chart default; maps merge; anything else replaces
    assert coalesce(user, defaults) == {"a": {"b": 1, "c": 3, "d": 4}, "l": [9], "keep": True}
