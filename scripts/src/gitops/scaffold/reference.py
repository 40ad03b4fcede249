"""The reference app (``apps/pod-details``) as the template of every new one: what a copy is made of, what changes
between two copies (name, package, port, description, owner) and which names a new app may take.

A second copy of its code kept as a template would drift from it; copying the app itself, with its names substituted,
gives every new app the code, tests, Dockerfile and chart that the repository's tests prove today.
"""

from __future__ import annotations

import keyword
import re
import sys
import tomllib
from dataclasses import dataclass
from importlib import util as importlib_util
from pathlib import Path
from typing import Any

from ruamel.yaml.comments import CommentedSeq

from gitops import git, yamlio
from gitops import model as repomodel
from gitops.errors import GitopsError
from gitops.model import release

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
LOCK_SUFFIX = ".lock"


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


# --- the reference app ----------------------------------------------------------------------------------------


def template_spec(root: Path, template: str = TEMPLATE_APP) -> AppSpec:
    """The reference app's name, port and description, read from where each is defined once."""
    return AppSpec(template, _chart_port(root / "apps" / template / "chart"), description_of(root / "apps" / template))


def description_of(app_dir: Path) -> str:
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
    out = git.run(root, "ls-files", "--cached", "--others", "--exclude-standard", "-z", "--", prefix)
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


def reset_versions(rel: str, text: str) -> str:
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


def hostname(app: str, env: repomodel.Environment) -> str:
    return f"{app}-{env.name}.{env.domain}"


def overlay_text(template_text: str | None, host: str, file: str) -> str:
    """An environment's values overlay for the new app: the reference app's overlay there (how that environment
    differs: replicas, resources, autoscaling), with the new app's hostname."""
    if not template_text:
        return yamlio.round_trip_dump(yamlio.commented({"hostnames": [host]}))
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
    return yamlio.round_trip_dump(data)


def release_text(template_text: str | None, pins: release.Pins, file: str) -> str:
    """A release.yaml with ``pins``, keeping the reference app's comments for the environment when it has one."""
    if template_text:
        return release.update(template_text, pins, file)
    data: dict[str, Any] = {"image": {"repository": pins.repository, "tag": pins.tag, "digest": pins.digest}}
    if not pins.follows:
        data["chart"] = {"commit": pins.chart_commit, "tree": pins.chart_tree}
    return release.update(yamlio.round_trip_dump(yamlio.commented(data)), pins, file)
