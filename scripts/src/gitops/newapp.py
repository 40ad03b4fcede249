"""`gitops new-app` and `gitops docs`: a new service copied from the reference app, its first release in a later
environment, and the files generated from the repository (Backstage catalog entry, TechDocs config, chart README).

The reference app (``apps/pod-details``) is the template. A second copy of its code kept as a template would drift
from it; copying the app itself, with its names substituted, gives every new app the code, tests, Dockerfile and chart
that the repository's tests prove today.

An app reaches the environments in two steps, because a promotion target runs a copy of the chart taken from a
commit of ``main`` (docs/adr/0006-promoted-charts-are-copied-into-the-environment.md), and a new app's chart is in no
commit yet:

1. ``gitops new-app NAME`` writes the app and its folder in the first environment (dev): an overlay with the
   environment's hostname and a release with the app's first image tag. The build workflow replaces that tag with the
   first image it builds once the change is merged.
2. ``gitops new-app NAME --env prod``, once the app is merged and runs in the environment before prod, writes prod's
   folder whole: its overlay, its first release (the image the previous environment runs) and the chart copied from
   HEAD with its provenance. From then on ``gitops promote`` moves it like any other app. Until then prod has no
   folder for the app, no Application, and ``gitops validate`` accepts that (gitops.rules).

Both steps write to the work tree only, all or nothing, and leave the commit to the developer: the result is
reviewed as a pull request like any other change.
"""

from __future__ import annotations

import contextlib
import copy
import io
import keyword
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import util as importlib_util
from pathlib import Path
from typing import Any

from ruamel.yaml.comments import CommentedMap, CommentedSeq

from gitops import gitutil, release, yamlio
from gitops import repo as repomodel
from gitops.errors import GitopsError

TEMPLATE_APP = "pod-details"
DEFAULT_OWNER = "platform-team"
# The Backstage System every app of this repository belongs to.
SYSTEM = "gitops-monorepo"
FIRST_VERSION = "0.1.0"
REPO_WEB = repomodel.REPO_URL.removesuffix(".git")
REPO_SLUG = REPO_WEB.removeprefix("https://github.com/")

# A DNS-1035 label: the app's name is its Service's name (which must start with a letter), its Helm release name and
# the first label of its hostnames.
NAME_RE = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
HELM_RELEASE_MAX = 53  # Helm refuses longer release names
DNS_LABEL_MAX = 63  # `<app>-<env>`: the hostname's first label and the Argo CD Application's name
# Backstage owner references: [kind:][namespace/]name (catalog-model's entity reference format).
OWNER_RE = re.compile(r"^(?:[a-z][a-z0-9]*:)?(?:[a-z0-9][-a-z0-9]*/)?[A-Za-z0-9][-A-Za-z0-9_.]{0,62}$")
# The description lands in TOML and Python strings, a Dockerfile label and YAML: characters that would need escaping
# in one of them are refused rather than escaped four different ways.
DESCRIPTION_RE = re.compile(r"^[^\"'`$\\\x00-\x1f\x7f]{1,200}$")
MIN_PORT = 1024  # the container drops every capability, NET_BIND_SERVICE included

# Files of an app that are generated for it rather than copied from the template.
GENERATED = ("catalog-info.yaml", "mkdocs.yml", "docs/index.md", "chart/README.md")
CATALOG_FILE = "catalog-info.yaml"
MKDOCS_FILE = "mkdocs.yml"
DOCS_INDEX = "docs/index.md"
CHART_README = "chart/README.md"
CHART_README_TEMPLATE = "README.md.gotmpl"
# Copied files whose digits are hashes: a port number must never be substituted inside them.
_LOCK_SUFFIX = ".lock"


@dataclass(frozen=True)
class AppSpec:
    """What differs between two copies of the reference app."""

    name: str
    port: int
    description: str
    owner: str = DEFAULT_OWNER

    @property
    def package(self) -> str:
        return self.name.replace("-", "_")


@dataclass
class Result:
    """What a run wrote, for the summary printed to the developer."""

    created: list[str] = field(default_factory=list)
    modified: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)

    next_steps: list[str] = field(default_factory=list)

    def text(self) -> str:
        out = [*self.lines]
        out += [f"  created  {p}" for p in self.created]
        out += [f"  modified {p}" for p in self.modified]
        return "\n".join([*out, *self.next_steps]) + "\n"


# --- the reference app ----------------------------------------------------------------------------------------


def template_spec(root: Path, template: str = TEMPLATE_APP) -> AppSpec:
    """The reference app's name, port and description, read from where each is defined once."""
    return AppSpec(template, _chart_port(root / "apps" / template / "chart"), _description(root / "apps" / template))


def _description(app_dir: Path) -> str:
    path = app_dir / "pyproject.toml"
    try:
        project = tomllib.loads(path.read_text()).get("project", {})
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise GitopsError(f"{path}: cannot read [project].description: {e}") from None
    description = project.get("description")
    if not isinstance(description, str) or not description:
        raise GitopsError(f"{path}: [project].description must be a non-empty string")
    return description


def _chart_port(chart: Path) -> int:
    values = yamlio.round_trip().load((chart / "values.yaml").read_text()) or {}
    port = (values.get("service") or {}).get("port")
    if not isinstance(port, int):
        raise GitopsError(f"{chart}/values.yaml: service.port must be a number (the port the server listens on)")
    return port


def template_files(root: Path, template: str = TEMPLATE_APP) -> list[str]:
    """The reference app's files as git sees them (tracked, or new and not ignored), minus the generated ones.

    Asking git rather than walking the directory leaves out what .gitignore leaves out: virtualenvs, caches,
    __pycache__, *.egg-info, build output.
    """
    prefix = f"apps/{template}/"
    out = gitutil.run(root, "ls-files", "--cached", "--others", "--exclude-standard", "-z", "--", prefix)
    names = sorted({n for n in out.split("\0") if n})
    skipped = {prefix + g for g in GENERATED}
    files = [n for n in names if n not in skipped and (root / n).is_file()]
    if not any(n.endswith("/chart/Chart.yaml") for n in files):
        raise GitopsError(f"{prefix}chart/Chart.yaml not found: the reference app {template!r} is the template")
    return files


def substitute(text: str, old: AppSpec, new: AppSpec, *, lock_file: bool = False) -> str:
    """``text`` of the reference app rewritten for the new one: names, description and port."""
    if old.description != new.description:
        text = text.replace(old.description, new.description)
        # Also where it follows the name in a sentence ("pod-details: reports its own health…").
        text = text.replace(_lower_first(old.description), _lower_first(new.description))
    text = text.replace(old.name, new.name).replace(old.package, new.package)
    if old.port != new.port and not lock_file:
        # Whole numbers only: 18080 or a hex digest that contains 8080 stays as it is.
        text = re.sub(rf"(?<![0-9A-Za-z]){old.port}(?![0-9A-Za-z])", str(new.port), text)
    return text


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


def _reset_versions(rel: str, text: str) -> str:
    """A new app starts at FIRST_VERSION, whatever release the reference app has reached."""
    if rel.endswith("/pyproject.toml"):
        return re.sub(r'(?m)^version = "[^"]*"$', f'version = "{FIRST_VERSION}"', text, count=1)
    if rel.endswith("/chart/Chart.yaml"):
        text = re.sub(r"(?m)^version: .*$", f"version: {FIRST_VERSION}", text, count=1)
        return re.sub(r"(?m)^appVersion: .*$", f'appVersion: "{FIRST_VERSION}"', text, count=1)
    return text


# --- checks -----------------------------------------------------------------------------------------------------


def max_name_length(envs: list[str]) -> int:
    longest_env = max((len(e) for e in envs), default=0)
    return min(HELM_RELEASE_MAX, DNS_LABEL_MAX - 1 - longest_env)


def check_name(root: Path, name: str, model: repomodel.Repo) -> None:
    """Refuse a name that cannot be a Kubernetes name, a hostname and a Python package, or that is taken."""
    if not NAME_RE.match(name):
        raise GitopsError(
            f"{name!r} is not a valid app name: use lowercase letters, digits and '-', starting with a letter and "
            "ending with a letter or digit (a DNS-1035 label: it names the Service, the Helm release and the hostname)"
        )
    envs = list(model.environments)
    limit = max_name_length(envs)
    if len(name) > limit:
        longest = max(envs, key=len) if envs else ""
        raise GitopsError(
            f"{name!r} is {len(name)} characters; at most {limit} fit: Helm release names are at most "
            f"{HELM_RELEASE_MAX}, and `{name}-{longest}` (hostname label, Argo CD Application) at most {DNS_LABEL_MAX}"
        )
    if (root / "apps" / name).exists():
        raise GitopsError(f"apps/{name}/ already exists: choose another name")
    if (root / "environments" / name).exists():
        raise GitopsError(f"environments/{name}/ is an environment: an app cannot share its name")
    for env in envs:
        if (root / "environments" / env / name).exists():
            raise GitopsError(f"environments/{env}/{name}/ already exists: remove it or choose another name")
    package = name.replace("-", "_")
    if keyword.iskeyword(package) or keyword.issoftkeyword(package):
        raise GitopsError(f"{name!r}: its Python package {package!r} would be a Python keyword; choose another name")
    if package in sys.stdlib_module_names or importlib_util.find_spec(package) is not None:
        raise GitopsError(
            f"{name!r}: its Python package {package!r} would shadow the module of that name that Python already "
            "finds (the standard library or an installed package); choose another name"
        )


def check_spec(spec: AppSpec) -> None:
    if not MIN_PORT <= spec.port <= 65535:
        raise GitopsError(
            f"--port {spec.port}: expected {MIN_PORT}-65535 (the container runs as a non-root user without "
            "NET_BIND_SERVICE, so it cannot bind a lower port)"
        )
    if not OWNER_RE.match(spec.owner):
        raise GitopsError(
            f"--owner {spec.owner!r}: expected a Backstage entity reference such as `platform-team` or "
            "`group:default/platform-team`"
        )
    if not DESCRIPTION_RE.match(spec.description):
        raise GitopsError(
            "--description: one line of at most 200 characters without quotes, backticks, `$` or backslashes "
            "(it is written into pyproject.toml, Chart.yaml, the Dockerfile and the OpenAPI document)"
        )


# --- YAML ---------------------------------------------------------------------------------------------------------


def _dump(data: Any) -> str:
    out = io.StringIO()
    yamlio.round_trip().dump(data, out)
    return out.getvalue()


def _commented(node: Any) -> Any:
    """Plain dicts and lists as ruamel nodes, so they dump in the given order and the repository's indentation."""
    if isinstance(node, dict):
        out = CommentedMap()
        for k, v in node.items():
            out[k] = _commented(v)
        return out
    if isinstance(node, list):
        return CommentedSeq([_commented(v) for v in node])
    return node


def hostname(app: str, env: repomodel.Environment) -> str:
    return f"{app}-{env.name}.{env.domain}"


def overlay_text(template_text: str | None, host: str, file: str) -> str:
    """An environment's values overlay for the new app: the reference app's overlay there (how that environment
    differs: replicas, resources, autoscaling), with the new app's hostname."""
    if not template_text:
        return _dump(_commented({"hostnames": [host]}))
    data = yamlio.round_trip().load(template_text)
    if not isinstance(data, dict):
        raise GitopsError(f"{file}: expected a mapping of Helm values")
    hosts = data.get("hostnames")
    if isinstance(hosts, CommentedSeq) and len(hosts) > 0:
        # Edited in place: the blank line or comment after the list hangs off its last item and must stay.
        trailing = hosts.ca.items.pop(len(hosts) - 1, None)
        del hosts[1:]
        hosts[0] = host
        if trailing is not None:
            hosts.ca.items[0] = trailing
    else:
        data["hostnames"] = CommentedSeq([host])
    return _dump(data)


def release_text(template_text: str | None, pins: release.Pins, file: str) -> str:
    """A release.yaml with ``pins``, keeping the reference app's comments for the environment when it has one."""
    if template_text:
        return release.update(template_text, pins, file)
    data: dict[str, Any] = {"image": {"repository": pins.repository, "tag": pins.tag, "digest": pins.digest}}
    if not pins.follows:
        data["chart"] = {"commit": pins.chart_commit, "tree": pins.chart_tree}
    return release.update(_dump(_commented(data)), pins, file)


def add_listener(text: str, file: str, name: str, host: str, secret: str) -> str:
    """The cluster's Gateway with an HTTPS listener for ``host``, shaped like the listeners it already has.

    One listener per hostname is how the platform gets a certificate per host from cert-manager (ADR 0001).
    """
    data = yamlio.round_trip().load(text)
    listeners = (data.get("spec") or {}).get("listeners") if isinstance(data, dict) else None
    if not isinstance(listeners, list):
        raise GitopsError(f"{file}: expected a Gateway with spec.listeners")
    if any(isinstance(x, dict) and x.get("hostname") == host for x in listeners):
        return text  # already served (a listener added by hand, or a retried run)
    like = next((x for x in listeners if isinstance(x, dict) and x.get("protocol") == "HTTPS"), None)
    if like is not None:
        listener = copy.deepcopy(like)
        listener["name"] = name
        listener["hostname"] = host
        refs = (listener.get("tls") or {}).get("certificateRefs") or []
        if refs:
            refs[0]["name"] = secret
    else:
        listener = _commented(
            {
                "name": name,
                "protocol": "HTTPS",
                "port": 443,
                "hostname": host,
                "tls": {"mode": "Terminate", "certificateRefs": [{"group": "", "kind": "Secret", "name": secret}]},
                "allowedRoutes": {
                    "namespaces": {
                        "from": "Selector",
                        "selector": {"matchLabels": {"platform.azurelaboratory.com/apps": "true"}},
                    },
                    "kinds": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute"}],
                },
            }
        )
    listeners.append(listener)
    return _dump(data)


# --- generated files ----------------------------------------------------------------------------------------------

GENERATED_NOTE = "Generated by `gitops docs` from the repository (scripts/src/gitops/newapp.py): change the generator."


def _argocd_domain(root: Path, cluster: str) -> str | None:
    path = root / "clusters" / cluster / "argocd-values.yaml"
    if not cluster or not path.is_file():
        return None
    data = yamlio.round_trip().load(path.read_text()) or {}
    domain = (data.get("global") or {}).get("domain")
    return str(domain) if domain else None


@dataclass(frozen=True)
class Placement:
    """An environment that runs the app (it has a release.yaml there), and the hostnames it serves it on."""

    env: repomodel.Environment
    hosts: list[str]


def placements(model: repomodel.Repo, app: str) -> list[Placement]:
    out = []
    for env in model.environments.values():
        if env.name not in model.promotion.order or not model.snapshot.exists(f"{env.folder}/{app}/release.yaml"):
            continue
        ae = model.app_envs.get((env.name, app))
        values = ae.values if ae is not None and isinstance(ae.values, dict) else {}
        hosts = values.get("hostnames") or []
        out.append(Placement(env, [str(h) for h in hosts] if isinstance(hosts, list) else []))
    return out


def current_owner(app_dir: Path) -> str:
    """The owner in the app's catalog entry, kept when the entry is regenerated; the default for a new app."""
    path = app_dir / CATALOG_FILE
    if path.is_file():
        data = yamlio.round_trip().load(path.read_text()) or {}
        owner = (data.get("spec") or {}).get("owner") if isinstance(data, dict) else None
        if isinstance(owner, str) and owner:
            return owner
    return DEFAULT_OWNER


def catalog_info(root: Path, order: list[str], app: str, description: str, owner: str, where: list[Placement]) -> str:
    """The app's Backstage Component, derived from the repository: where it runs and how to reach it there.

    The lifecycle follows the releases: `production` once the last environment of the promotion order runs the app,
    `experimental` before.
    """
    lifecycle = "production" if order and any(p.env.name == order[-1] for p in where) else "experimental"
    links: list[dict[str, str]] = []
    for p in sorted(where, key=lambda p: order.index(p.env.name) if p.env.name in order else len(order)):
        env = p.env
        for host in p.hosts[:1]:
            links.append({"url": f"https://{host}/api/v1/openapi.json", "title": f"{env.name}: API", "icon": "web"})
            links.append({"url": f"https://{host}/api/v1/healthz", "title": f"{env.name}: health", "icon": "dashboard"})
        domain = _argocd_domain(root, env.cluster)
        if domain:
            links.append(
                {
                    "url": f"https://{domain}/applications/argocd/{app}-{env.name}",
                    "title": f"{env.name}: Argo CD",
                    "icon": "cloud",
                }
            )
    entity = {
        "apiVersion": "backstage.io/v1alpha1",
        "kind": "Component",
        "metadata": {
            "name": app,
            "description": description,
            "annotations": {
                "github.com/project-slug": REPO_SLUG,
                "backstage.io/source-location": f"url:{REPO_WEB}/tree/{repomodel.TRACKED_BRANCH}/apps/{app}/",
                "backstage.io/techdocs-ref": "dir:.",
                # Both plugins find the app by the label every environment gives it: the ApplicationSets label each
                # Application, and the chart labels each workload, with app.kubernetes.io/name=<app>.
                "argocd/app-selector": f"app.kubernetes.io/name={app}",
                "backstage.io/kubernetes-label-selector": f"app.kubernetes.io/name={app}",
            },
            "tags": ["python", "flask", "helm"],
            "links": links,
        },
        "spec": {"type": "service", "owner": owner, "system": SYSTEM, "lifecycle": lifecycle},
    }
    return f"# {GENERATED_NOTE}\n# The owner is kept when it is regenerated.\n" + _dump(_commented(entity))


def mkdocs_yml(app: str, description: str) -> str:
    """TechDocs configuration: catalog-info.yaml says `techdocs-ref: dir:.`, so the site is built from docs/ here."""
    data = {
        "site_name": app,
        "site_description": description,
        "repo_url": REPO_WEB,
        "edit_uri": f"edit/{repomodel.TRACKED_BRANCH}/apps/{app}/docs/",
        "nav": [{"Overview": "index.md"}],
        "plugins": ["techdocs-core"],
    }
    return f"# {GENERATED_NOTE}\n" + _dump(_commented(data))


def docs_index(app: str, spec: AppSpec, model: repomodel.Repo, template: str = TEMPLATE_APP) -> str:
    """The app's TechDocs front page. Written once, when the app is created; from then on the app's team owns it.

    Links leave the docs folder as absolute URLs: TechDocs publishes docs/ alone, where relative paths would break.
    """
    tree = f"{REPO_WEB}/tree/{repomodel.TRACKED_BRANCH}"
    blob = f"{REPO_WEB}/blob/{repomodel.TRACKED_BRANCH}"
    first = model.promotion.order[0] if model.promotion.order else "dev"
    rows = []
    for env in model.environments.values():
        if env.name in model.promotion.order:
            rows.append(f"| {env.name} | `{app}-{env.name}` | https://{hostname(app, env)} |")
    origin = (
        "It is the reference app: `gitops new-app` copies it, with names substituted, to start every new service."
        if app == template
        else f"It started as a copy of the reference app, [`{template}`]({tree}/apps/{template}), made by "
        "`gitops new-app`: the same structure, tests, Dockerfile and chart, under its own names."
    )
    return f"""# {app}

{spec.description}

{origin}

The code, tests, Dockerfile and chart are in [`apps/{app}/`]({tree}/apps/{app}); what each environment runs, in
[`environments/<env>/{app}/`]({tree}/environments).

## Endpoints

| path | answers |
| --- | --- |
| `/api/v1/healthz` | liveness: 200 while the process can serve |
| `/api/v1/readyz` | readiness: 200, and 503 from SIGTERM on while the pod drains |
| `/api/v1/details` | the pod the process runs in, where that came from and how fresh it is |
| `/api/v1/version` | name, version, commit and Python of the running build |
| `/api/v1/openapi.json` | the OpenAPI 3.1 document of every endpoint |
| `/metrics` | Prometheus metrics of all worker processes |

## Environments

Each environment that has `environments/<env>/{app}/release.yaml` runs the app as the Argo CD Application
`{app}-<env>`, at `https://{app}-<env>.<domain>`:

| environment | Argo CD Application | URL |
| --- | --- | --- |
{chr(10).join(rows)}

Every image build of `main` is bumped into {first}; later environments receive releases from the one before with
`gitops promote` (the first one with `gitops new-app {app} --env <env>`). See the
[runbook]({blob}/docs/runbook.md).

## Run and test locally

```sh
BIND=127.0.0.1:{spec.port} .venv/bin/python -m {spec.package}   # gunicorn with the container's configuration
.venv/bin/pytest apps/{app}/tests
```

The settings are environment variables, validated at start (`src/{spec.package}/settings.py`); the chart sets them
from its values, documented in the [chart README]({blob}/apps/{app}/chart/README.md).
"""


def helm_docs_command(chart: Path) -> list[str]:
    """The helm-docs invocation that writes the chart's README.md from README.md.gotmpl and values.yaml."""
    from gitops.toolchain import ToolMissing, tool_path

    try:
        exe = tool_path("helm-docs")
    except ToolMissing as e:
        raise GitopsError(str(e)) from None
    return [
        str(exe),
        "--chart-search-root",
        str(chart),
        "--template-files",
        CHART_README_TEMPLATE,
        "--sort-values-order",
        "file",
        "--log-level",
        "warning",
    ]


def chart_readme(chart: Path) -> str:
    """What helm-docs writes for ``chart``, generated in a scratch copy so the chart itself is never touched."""
    with tempfile.TemporaryDirectory(prefix="gitops-helm-docs-") as tmp:
        copy_dir = Path(tmp) / chart.name
        shutil.copytree(chart, copy_dir, ignore=shutil.ignore_patterns("README.md"))
        cmd = helm_docs_command(copy_dir)
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        readme = copy_dir / "README.md"
        if proc.returncode != 0 or not readme.is_file():
            raise GitopsError(f"helm-docs failed for {chart}: {(proc.stderr or proc.stdout).strip()}")
        return readme.read_text()


@dataclass(frozen=True)
class Generated:
    path: str  # repo-relative
    text: str


def generated_files(root: Path, app: str, model: repomodel.Repo | None = None) -> list[Generated]:
    """What `gitops docs` keeps current for ``app``: its catalog entry, its TechDocs config and its chart README."""
    model = model or repomodel.load(root)
    app_dir = root / "apps" / app
    description = _description(app_dir)
    out = [
        Generated(
            f"apps/{app}/{CATALOG_FILE}",
            catalog_info(root, model.promotion.order, app, description, current_owner(app_dir), placements(model, app)),
        ),
        Generated(f"apps/{app}/{MKDOCS_FILE}", mkdocs_yml(app, description)),
    ]
    chart = app_dir / "chart"
    if (chart / CHART_README_TEMPLATE).is_file():
        out.append(Generated(f"apps/{app}/{CHART_README}", chart_readme(chart)))
    return out


def stale_docs(root: Path) -> list[Generated]:
    """Generated files of every app that differ from what is committed (or are missing)."""
    model = repomodel.load(root)
    stale = []
    for app in model.apps:
        for g in generated_files(root, app, model):
            path = root / g.path
            if not path.is_file() or path.read_text() != g.text:
                stale.append(g)
    return stale


def write_docs(root: Path) -> list[str]:
    """Regenerate every app's generated files; the paths that changed."""
    changed = []
    for g in stale_docs(root):
        path = root / g.path
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_atomically(path, g.text)
        changed.append(g.path)
    return changed


# --- writing ------------------------------------------------------------------------------------------------------


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.gitops-tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


class _Transaction:
    """New directories built in a staging area inside the repository, then renamed into place; edits to existing files
    swapped in with os.replace. Anything that fails, or an interrupt, before the end puts every path back as it was
    and removes the staging area: a refused or failed run leaves nothing behind."""

    def __init__(self, root: Path) -> None:
        self.root = root
        # Inside the repository, so every rename into place stays on one filesystem and is atomic.
        self.staging = Path(tempfile.mkdtemp(prefix=".gitops-new-app-", dir=root))
        self._dirs: list[str] = []  # repo-relative directories to create
        self._edits: dict[str, str] = {}  # repo-relative existing file -> new text

    def stage(self, rel: str) -> Path:
        """Where to build the new directory ``rel``; it is moved to ``root/rel`` on commit."""
        self._dirs.append(rel)
        path = self.staging / rel
        path.mkdir(parents=True)
        return path

    def edit(self, rel: str, text: str) -> None:
        self._edits[rel] = text

    def commit(self) -> tuple[list[str], list[str]]:
        moved: list[str] = []
        replaced: list[tuple[str, str | None]] = []
        try:
            for rel in self._dirs:
                target = self.root / rel
                if target.exists():
                    raise GitopsError(f"{rel} appeared while the app was being prepared; nothing was written")
                target.parent.mkdir(parents=True, exist_ok=True)
                os.rename(self.staging / rel, target)
                moved.append(rel)
            for rel, text in self._edits.items():
                target = self.root / rel
                original = target.read_text() if target.exists() else None
                staged = self.staging / "edits" / rel
                staged.parent.mkdir(parents=True, exist_ok=True)
                staged.write_text(text)
                os.replace(staged, target)
                replaced.append((rel, original))
        except BaseException:
            for rel in reversed(moved):
                shutil.rmtree(self.root / rel, ignore_errors=True)
            for rel, original in reversed(replaced):
                if original is None:
                    (self.root / rel).unlink(missing_ok=True)
                else:
                    (self.root / rel).write_text(original)
            raise
        return moved, list(self._edits)

    def close(self) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)


@contextlib.contextmanager
def _transaction(root: Path) -> Iterator[_Transaction]:
    with gitutil.interrupts_as_keyboard_interrupt():
        tx = _Transaction(root)
        try:
            yield tx
        finally:
            tx.close()


def _venv_tool(name: str) -> Path:
    path = Path(sys.executable).parent / name
    if not path.exists():
        raise GitopsError(f"{path} is missing: run `make setup`")
    return path


def _normalise_python(root: Path, app_dir: Path) -> None:
    """Format the copied code with the repository's ruff settings: a name of another length moves line breaks, and
    a package name sorts differently among the imports."""
    ruff = str(_venv_tool("ruff"))
    config = str(root / "pyproject.toml")
    targets = [str(p) for p in sorted(app_dir.rglob("*.py"))]
    if not targets:
        return
    for cmd in (
        [ruff, "check", "--quiet", "--config", config, "--select", "I", "--fix", "--exit-zero", *targets],
        [ruff, "format", "--quiet", "--config", config, *targets],
    ):
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            raise GitopsError(f"`{' '.join(cmd[:3])}` failed on the new app: {(proc.stderr or proc.stdout).strip()}")


# --- gitops new-app NAME ------------------------------------------------------------------------------------------


def create(root: Path, name: str, *, port: int | None, owner: str, description: str | None) -> Result:
    """Create ``apps/<name>/`` from the reference app and its folder in every environment that follows a branch."""
    model = repomodel.load(root)
    check_name(root, name, model)
    old = template_spec(root)
    new = AppSpec(name, old.port if port is None else port, description or old.description, owner)
    check_spec(new)
    files = template_files(root)
    creation_envs = [e for e in model.environments.values() if e.name in model.promotion.order and not e.promoted]
    if not creation_envs:
        raise GitopsError(f"{repomodel.PROMOTION_FILE} names no environment: a new app starts in the first one")
    for env in creation_envs:
        if not env.domain:
            raise GitopsError(f"{env.folder}/env.yaml has no `domain`: the app's hostname there would be unknown")

    result = Result(lines=[f"created app {name} from {old.name} (port {new.port}, owner {new.owner}):"])
    with _transaction(root) as tx:
        app_dir = tx.stage(f"apps/{name}")
        prefix = f"apps/{old.name}/"
        for rel in files:
            inner = substitute(rel[len(prefix) :], old, new)
            target = app_dir / inner
            target.parent.mkdir(parents=True, exist_ok=True)
            data = (root / rel).read_bytes()
            try:
                text = data.decode()
            except UnicodeDecodeError:  # binary: copied as it is
                target.write_bytes(data)
            else:
                text = _reset_versions(rel, substitute(text, old, new, lock_file=rel.endswith(_LOCK_SUFFIX)))
                target.write_text(text)
            shutil.copymode(root / rel, target)
        _normalise_python(root, app_dir)

        listeners: dict[str, str] = {}
        for env in creation_envs:
            _stage_env(tx, model, env, name, old.name, _first_pins(model, env, name, old.name))
            _stage_listener(root, env, name, listeners)
        for rel, text in listeners.items():
            tx.edit(rel, text)

        where = [Placement(env, [hostname(name, env)]) for env in creation_envs]
        catalog = catalog_info(root, model.promotion.order, name, new.description, new.owner, where)
        (app_dir / CATALOG_FILE).write_text(catalog)
        (app_dir / MKDOCS_FILE).write_text(mkdocs_yml(name, new.description))
        (app_dir / DOCS_INDEX).parent.mkdir(parents=True, exist_ok=True)
        (app_dir / DOCS_INDEX).write_text(docs_index(name, new, model))
        if (app_dir / "chart" / CHART_README_TEMPLATE).is_file():
            (app_dir / CHART_README).write_text(chart_readme(app_dir / "chart"))

        created, modified = tx.commit()

    result.created = [f"{p}/" for p in created]
    result.modified = modified
    for env in creation_envs:
        result.lines.append(f"  {env.name}: Application {name}-{env.name} at https://{hostname(name, env)}")
    promoted = [e.name for e in model.environments.values() if e.name in model.promotion.order and e.promoted]
    next_steps = [
        "next: `gitops validate`, then commit and open a pull request; once merged, the build workflow builds the",
        f"  first image and bumps it into {creation_envs[0].name}.",
    ]
    for env in promoted:
        next_steps.append(
            f"  {env} runs a copy of the chart from a commit of main, so {name} reaches it after the merge: "
            f"`gitops new-app {name} --env {env}`"
        )
    result.next_steps = next_steps
    return result


def _first_pins(model: repomodel.Repo, env: repomodel.Environment, name: str, template: str) -> release.Pins:
    """The new app's first release in the first environment: its image repository (the reference app's, renamed)
    and its first version as the tag; its chart is apps/<name>/chart on main."""
    ae = model.app_envs.get((env.name, template))
    repository = f"docker.io/azurelaboratory/{name}"
    if ae is not None and ae.release is not None:
        repository = str(ae.release.image.repository).replace(template, name)
    return release.Pins(repository, FIRST_VERSION, "")


def _stage_env(
    tx: _Transaction,
    model: repomodel.Repo,
    env: repomodel.Environment,
    name: str,
    template: str,
    pins: release.Pins,
    chart_from: tuple[str, str] | None = None,
) -> None:
    """The app's folder in ``env``: its overlay, its release.yaml and, with ``chart_from`` (a commit and a chart
    folder), the chart copied from that folder at that commit."""
    values_rel = f"{env.folder}/{name}/values.yaml"
    release_rel = f"{env.folder}/{name}/release.yaml"
    template_release = model.read(f"{env.folder}/{template}/release.yaml")
    if template_release is not None:  # its comments name the reference app
        template_release = template_release.replace(template, name)
    folder = tx.stage(f"{env.folder}/{name}")
    template_values = model.read(f"{env.folder}/{template}/values.yaml")
    (folder / "values.yaml").write_text(overlay_text(template_values, hostname(name, env), values_rel))
    (folder / "release.yaml").write_text(release_text(template_release, pins, release_rel))
    if chart_from is not None:
        gitutil.export_tree(tx.root, *chart_from, folder / "chart")


def _stage_listener(root: Path, env: repomodel.Environment, name: str, edits: dict[str, str]) -> None:
    rel = f"clusters/{env.cluster}/gateway.yaml"
    if not env.cluster or not (root / rel).is_file():
        return  # a cluster without a shared Gateway of ours: nothing to attach to
    text = edits.get(rel) or (root / rel).read_text()
    edits[rel] = add_listener(text, rel, f"https-{name}-{env.name}", hostname(name, env), f"{name}-{env.name}-tls")


# --- gitops new-app NAME --env ENV --------------------------------------------------------------------------------


def first_release(root: Path, name: str, env_name: str) -> Result:
    """The app's first release in ``env_name``: the previous environment's image, the exact commit of the chart."""
    model = repomodel.load(root)
    if name not in model.apps:
        raise GitopsError(f"apps/{name}/chart/Chart.yaml does not exist: create the app with `gitops new-app {name}`")
    if env_name not in model.environments:
        known = ", ".join(model.environments) or "none"
        raise GitopsError(f"unknown environment {env_name!r}: environments/{env_name}/ does not exist (known: {known})")
    env = model.environments[env_name]
    order = model.promotion.order
    if env_name not in order or order.index(env_name) == 0:
        raise GitopsError(
            f"{env_name} is not a later environment of {repomodel.PROMOTION_FILE} ({' → '.join(order)}): "
            f"`gitops new-app {name}` already created the app in the first one"
        )
    folder = f"{env.folder}/{name}"
    if (root / folder / "release.yaml").exists():
        raise GitopsError(f"{folder}/release.yaml exists: {name} is in {env_name}; move releases with `gitops promote`")
    previous = order[order.index(env_name) - 1]
    source = release.read(root, previous, name)
    if source is None:
        raise GitopsError(
            f"{name} has no release in {previous} ({release.release_file(previous, name)}): a release reaches "
            f"{env_name} from {previous}"
        )
    if not env.domain:
        raise GitopsError(f"{env.folder}/env.yaml has no `domain`: the app's hostname there would be unknown")

    notes: list[str] = []
    if source.follows:
        commit = gitutil.head(root)  # the chart on main, as of the commit this runs on
        tree = gitutil.tree_id(root, commit, f"apps/{name}/chart")
        if tree is None:
            raise GitopsError(
                f"apps/{name}/chart is not in commit {commit[:12]}: {env_name} runs a copy of the chart taken from a "
                f"commit, so commit and merge the app first, then run this on a checkout of that commit"
            )
        tracked = gitutil.rev_parse(root, f"refs/remotes/origin/{repomodel.TRACKED_BRANCH}")
        if tracked is not None and not gitutil.is_ancestor(root, commit, tracked):
            notes.append(
                f"warning: {commit[:12]} is not on origin/{repomodel.TRACKED_BRANCH} yet: the chart copy records it "
                f"as its source, so run this on a checkout of a merged commit"
            )
        pins = release.Pins(source.repository, source.tag, source.digest, commit, tree)
    else:
        pins = source  # from a promotion target: its release and copy as they are
    if source.follows:
        chart_from = (pins.chart_commit, f"apps/{name}/chart")
    else:
        chart_from = (gitutil.head(root), release.chart_dir(previous, name))
    copied = f"chart copied from {chart_from[1]} at {chart_from[0][:12]}"
    result = Result(lines=[*notes, f"first release of {name} in {env_name} ({pins.image}, {copied}):"])
    with _transaction(root) as tx:
        _stage_env(tx, model, env, name, TEMPLATE_APP, pins, chart_from)
        listeners: dict[str, str] = {}
        _stage_listener(root, env, name, listeners)
        for rel, text in listeners.items():
            tx.edit(rel, text)
        app_dir = root / "apps" / name
        where = [*placements(model, name), Placement(env, [hostname(name, env)])]
        catalog = catalog_info(root, order, name, _description(app_dir), current_owner(app_dir), where)
        if (app_dir / CATALOG_FILE).is_file():
            tx.edit(f"apps/{name}/{CATALOG_FILE}", catalog)
        created, modified = tx.commit()
    result.created = [f"{p}/" for p in created]
    result.modified = modified
    result.lines.append(f"  {env_name}: Application {name}-{env_name} at https://{hostname(name, env)}")
    result.next_steps.append(
        f"next: `gitops validate {env_name}`, commit, open a pull request: merging it deploys {name} to {env_name}; "
        f"later releases move with `gitops promote --from {previous} --to {env_name} --app {name}`"
    )
    return result
