"""Repository rules that no schema can express: shape of the promotion, completeness, pins, unique hostnames."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable

from gitops import git, yamlio
from gitops.appset import Application
from gitops.findings import Finding
from gitops.render import Rendered
from gitops.repo import PROMOTION_FILE, Repo

CHECK = "repo-rules"
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
RELEASE_KEYS = {"image": {"repository", "tag", "digest"}, "chart": {"revision"}}


def promotion(repo: Repo) -> list[Finding]:
    out = []
    data = repo.promotion.data
    folders = set(repo.environments)
    for i, name in enumerate(repo.promotion.order):
        if not repo.snapshot.is_dir(f"environments/{name}"):
            out.append(
                Finding(
                    CHECK,
                    f"the promotion order names {name!r}, but environments/{name}/ does not exist",
                    file=PROMOTION_FILE,
                    line=yamlio.line_of(data, "order", i),
                )
            )
    for name in sorted(folders - set(repo.promotion.order)):
        out.append(
            Finding(
                CHECK,
                f"environments/{name}/ is not in the promotion order: add it to `order` in {PROMOTION_FILE}",
                env=name,
                file=PROMOTION_FILE,
                line=yamlio.line_of(data, "order"),
            )
        )
    for i, name in enumerate(repo.promotion.pinned or []):
        if name not in folders:
            out.append(
                Finding(
                    CHECK,
                    f"`pinned` names {name!r}, which is no environment",
                    file=PROMOTION_FILE,
                    line=yamlio.line_of(data, "pinned", i),
                )
            )
    return out


def releases(repo: Repo, envs: Iterable[str]) -> list[Finding]:
    """Every app of every environment has a release and an overlay, and each release is well formed."""
    out: list[Finding] = []
    for env_name in envs:
        env = repo.environments[env_name]
        for ae in repo.env_apps(env_name):

            def problem(message: str, file: str, line: int | None = None, ae=ae) -> None:
                out.append(Finding(CHECK, message, env=ae.env, app=ae.app, file=file, line=line))

            if ae.app not in repo.apps:
                problem(f"{ae.folder}/ has no chart: expected apps/{ae.app}/chart/Chart.yaml", ae.folder)
                continue
            if env.pinned and not repo.snapshot.exists(ae.release_file) and repo.snapshot.exists(ae.values_file):
                # Not released here yet: a pinned environment reads its overlay at the pinned commit, so a new app's
                # overlay is committed first and its first release follows the merge (gitops.newapp).
                continue
            if not repo.snapshot.exists(ae.release_file):
                problem(
                    "missing release.yaml: every app runs in every environment"
                    " (image: {repository, tag, digest}, chart: {revision})",
                    ae.release_file,
                )
            if not repo.snapshot.exists(ae.values_file):
                problem(
                    "missing values.yaml: every app has an overlay in every environment (it may be empty: `{}`)",
                    ae.values_file,
                )
            if ae.values is not None and not isinstance(ae.values, dict):
                problem("values.yaml must be a mapping of Helm values", ae.values_file, 1)
            if ae.release is not None:
                out.extend(_release(ae.env, ae.app, ae.release, pinned=env.pinned))
    return out


def _release(env: str, app: str, release, *, pinned: bool) -> list[Finding]:
    out = []
    file, data = release.file, release.data

    def problem(message: str, *path: str) -> None:
        out.append(Finding(CHECK, message, env=env, app=app, file=file, line=yamlio.line_of(data, *path)))

    for key in data:
        if key not in RELEASE_KEYS:
            problem(f"unknown key {key!r} (expected: image, chart)", key)
        elif isinstance(data[key], dict):
            for sub in data[key]:
                if sub not in RELEASE_KEYS[key]:
                    problem(f"unknown key {key}.{sub} (expected: {', '.join(sorted(RELEASE_KEYS[key]))})", key, sub)
        else:
            problem(f"`{key}` must be a mapping ({', '.join(sorted(RELEASE_KEYS[key]))})", key)
    image = release.image
    if not isinstance(image.repository, str) or not image.repository:
        problem("image.repository must be a non-empty string (the image without tag or digest)", "image", "repository")
    if not isinstance(image.tag, str):
        problem(
            f"image.tag must be a string: quote it (YAML reads {image.tag!r} as a {type(image.tag).__name__})",
            "image",
            "tag",
        )
    elif not image.tag:
        problem("image.tag is empty: a release names the exact image it runs", "image", "tag")
    elif image.tag == "latest":
        problem(
            "image.tag is `latest`: a release names an immutable tag (and the digest), never a moving one",
            "image",
            "tag",
        )
    if not isinstance(image.digest, str) or (image.digest and not DIGEST.match(image.digest)):
        problem(f'image.digest {image.digest!r} must be "" or sha256:<64 lowercase hex>', "image", "digest")
    rev = release.chart_revision
    if not isinstance(rev, str) or not rev:
        problem("chart.revision must be a non-empty string (a branch, or a 40-hex commit)", "chart", "revision")
    elif pinned and not git.SHA_RE.match(rev):
        problem(
            f"chart.revision {rev!r}: {env} is a promotion target, so it pins the chart to an exact 40-hex commit",
            "chart",
            "revision",
        )
    return out


def destinations(repo: Repo, applications: Iterable[Application]) -> list[Finding]:
    """Each environment's Applications deploy into the namespace its env.yaml declares."""
    out = []
    for a in applications:
        env = repo.environments.get(a.env)
        if env and env.namespace and a.destination_namespace != env.namespace:
            out.append(
                Finding(
                    CHECK,
                    f"Application {a.name} deploys to namespace {a.destination_namespace!r},"
                    f" but {env.file} says {env.namespace!r}",
                    env=a.env,
                    app=a.app,
                    file=a.appset_file,
                )
            )
    return out


def hostnames(repo: Repo, rendered: Iterable[Rendered]) -> list[Finding]:
    """A hostname belongs to one app in one environment: collected from rendered HTTPRoutes and Ingresses."""
    owners: dict[str, list[tuple[str, str, str, str]]] = defaultdict(list)
    for r in rendered:
        for doc in r.documents:
            for host in _hosts(doc.kind, doc.obj):
                owner = (r.env, r.app, doc.kind, doc.name)
                if owner not in owners[host]:
                    owners[host].append(owner)
    out = []
    for host, users in sorted(owners.items()):
        if len({(e, a) for e, a, _, _ in users}) < 2:
            continue
        first = users[0]
        for env, app, kind, name in users[1:]:
            file, line = _host_line(repo, env, app, host)
            out.append(
                Finding(
                    CHECK,
                    f"hostname {host} is also used by {first[0]}/{first[1]} ({first[2]}/{first[3]}):"
                    " hostnames are unique across environments",
                    env=env,
                    app=app,
                    file=file,
                    line=line,
                    kind=kind,
                    name=name,
                )
            )
    return out


def _hosts(kind: str, obj: dict) -> list[str]:
    spec = obj.get("spec") or {}
    if kind == "HTTPRoute" or kind == "GRPCRoute":
        return [str(h) for h in spec.get("hostnames") or []]
    if kind == "Ingress":
        hosts = [str(r["host"]) for r in spec.get("rules") or [] if isinstance(r, dict) and r.get("host")]
        return hosts + [
            str(h)
            for t in spec.get("tls") or []
            if isinstance(t, dict)
            for h in t.get("hosts") or []
            if str(h) not in hosts
        ]
    return []


def _host_line(repo: Repo, env: str, app: str, host: str) -> tuple[str, int | None]:
    ae = repo.app_envs.get((env, app))
    if ae is None:
        return "", None
    text = repo.read(ae.values_file) or ""
    for n, line in enumerate(text.splitlines(), 1):
        if host in line:
            return ae.values_file, n
    return ae.values_file, None
