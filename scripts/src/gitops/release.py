"""Release pins: what moves between environments (image repository/tag/digest, chart revision), read from and written
to ``environments/<env>/<app>/release.yaml`` without disturbing the rest of the file.

Only these four values are ever promoted; ``values.yaml`` (how an environment differs) never is. Edits go through
ruamel.yaml's round-trip mode so comments, key order and quoting survive: a promotion diff shows the pins and nothing
else.
"""

from __future__ import annotations

import io
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml.error import YAMLError
from ruamel.yaml.scalarstring import DoubleQuotedScalarString, SingleQuotedScalarString

from gitops import gitutil, yamlio
from gitops.errors import GitopsError

DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")


def release_file(env: str, app: str) -> str:
    return f"environments/{env}/{app}/release.yaml"


@dataclass(frozen=True)
class Pins:
    repository: str
    tag: str
    digest: str  # "" or sha256:<64 hex>
    revision: str  # a branch (follows its head) or an exact 40-hex commit

    @property
    def image(self) -> str:
        """`repo:tag@digest` (or `repo:tag` without a digest), as written in trailers and PR bodies."""
        ref = f"{self.repository}:{self.tag}"
        return f"{ref}@{self.digest}" if self.digest else ref

    @property
    def pinned(self) -> bool:
        return bool(gitutil.SHA_RE.match(self.revision))

    def short_image(self) -> str:
        """`tag@sha256:0123abcd` — enough to tell two releases apart in a table."""
        return f"{self.tag}@{self.digest[:15]}" if self.digest else self.tag

    def short_revision(self) -> str:
        return self.revision[:12] if self.pinned else self.revision

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def _load(text: str, file: str) -> Any:
    try:
        data = yamlio.round_trip().load(text)
    except YAMLError as e:
        raise GitopsError(f"{file}: not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise GitopsError(f"{file}: expected a mapping with `image:` and `chart:`, got {type(data).__name__}")
    return data


def parse(text: str, file: str) -> Pins:
    """The pins of a release.yaml; an error names the file and the key that is missing or malformed."""
    data = _load(text, file)
    image = data.get("image")
    chart = data.get("chart")
    if not isinstance(image, dict):
        raise GitopsError(f"{file}: expected `image:` with repository, tag and digest")
    if not isinstance(chart, dict):
        raise GitopsError(f"{file}: expected `chart:` with revision")
    values = {
        "repository": image.get("repository"),
        "tag": image.get("tag"),
        "digest": image.get("digest"),
        "revision": chart.get("revision"),
    }
    for key, value in values.items():
        if value is None or (key != "digest" and value == ""):
            where = "chart.revision" if key == "revision" else f"image.{key}"
            raise GitopsError(f"{file}: `{where}` is missing (expected a non-empty string)")
    digest = str(values["digest"])
    if digest and not DIGEST_RE.match(digest):
        raise GitopsError(f'{file}: `image.digest` is {digest!r}; expected "" or sha256:<64 hex>')
    return Pins(str(values["repository"]), str(values["tag"]), digest, str(values["revision"]))


def _like(old: Any, new: str) -> Any:
    """``new`` quoted the way ``old`` was, so a tag written as "0.1.0" stays quoted (plain strings that would read
    as numbers are quoted by the emitter anyway)."""
    if isinstance(old, DoubleQuotedScalarString):
        return DoubleQuotedScalarString(new)
    if isinstance(old, SingleQuotedScalarString):
        return SingleQuotedScalarString(new)
    return new


def update(text: str, pins: Pins, file: str) -> str:
    """``text`` with its four pins set to ``pins``; comments, order and formatting of everything else kept."""
    data = _load(text, file)
    image = data.setdefault("image", {})
    chart = data.setdefault("chart", {})
    for mapping, key, value in (
        (image, "repository", pins.repository),
        (image, "tag", pins.tag),
        (image, "digest", pins.digest),
        (chart, "revision", pins.revision),
    ):
        old = mapping.get(key)
        if old is not None and str(old) == value:
            continue  # untouched keys keep their exact bytes
        mapping[key] = DoubleQuotedScalarString(value) if value == "" else _like(old, value)
    out = io.StringIO()
    yamlio.round_trip().dump(data, out)
    return out.getvalue()


def read(root: Path, env: str, app: str, rev: str | None = None) -> Pins | None:
    """The pins of ``env``/``app`` in the work tree (``rev`` None) or at a commit; None when the file is absent."""
    path = release_file(env, app)
    if rev is None:
        file = root / path
        if not file.is_file():
            return None
        text = file.read_text()
    else:
        text = gitutil.show(root, rev, path)
        if text is None:
            return None
    return parse(text, path if rev is None else f"{path} at {rev[:12]}")


@dataclass
class Layout:
    """What release changes need from the repository model (`gitops.repo`): the promotion order and which apps each
    environment has a release for."""

    order: list[str]
    envs: list[str]  # folders under environments/
    apps: dict[str, list[str]]  # env -> apps with a release.yaml
    pinned: set[str]  # environments whose chart revision must be an exact commit

    def require_env(self, env: str) -> None:
        if env not in self.envs:
            known = ", ".join(self.envs) or "none"
            raise GitopsError(f"unknown environment {env!r}: environments/{env}/ does not exist (known: {known})")

    def require_app(self, env: str, app: str) -> None:
        if app not in self.apps.get(env, []):
            known = ", ".join(self.apps.get(env, [])) or "none"
            raise GitopsError(f"unknown app {app!r} in {env}: {release_file(env, app)} does not exist (known: {known})")


def layout(root: Path) -> Layout:
    from gitops import repo

    model = repo.load(root)
    apps: dict[str, list[str]] = {}
    for (env, app), ae in sorted(model.app_envs.items()):
        if (root / ae.release_file).is_file():
            apps.setdefault(env, []).append(app)
    envs = list(model.environments)
    return Layout(
        order=list(model.promotion.order),
        envs=envs,
        apps=apps,
        pinned={e for e in envs if model.promotion.is_pinned(e)},
    )
