"""Releases: what moves between environments, read from and written to ``environments/<env>/<app>/release.yaml``
without disturbing the rest of the file.

A release is an image (repository, tag, digest) and a chart:

- in the first environment of ``environments/promotion.yaml`` (dev) the chart is ``apps/<app>/chart`` on ``main``,
  so its release.yaml names only the image (``gitops bump`` writes it);
- in every later environment the chart is a copy, ``environments/<env>/<app>/chart/``, that ``gitops promote`` writes
  together with ``chart.commit`` (the commit of ``apps/<app>/chart`` it was copied from) and ``chart.tree`` (the git
  tree id of that folder, which the copy must keep: ``gitops validate`` compares them). The environment is then
  described entirely by its folder at ``main`` (docs/adr/0006-promoted-charts-are-copied-into-the-environment.md).

``values.yaml`` beside it (how an environment differs) is never part of a release. Edits go through ruamel.yaml's
round-trip mode so comments, key order and quoting survive: a promotion diff shows the release and nothing else.
"""

from __future__ import annotations

import io
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import YAMLError
from ruamel.yaml.scalarstring import DoubleQuotedScalarString, SingleQuotedScalarString

from gitops import git, yamlio
from gitops.errors import GitopsError

DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
# The branch the first environment's chart follows (repo.TRACKED_BRANCH; repeated here to keep this module a leaf).
FOLLOWED = "main"


def release_file(env: str, app: str) -> str:
    return f"environments/{env}/{app}/release.yaml"


def chart_dir(env: str, app: str) -> str:
    """Where a promotion target keeps the copy of the chart it runs."""
    return f"environments/{env}/{app}/chart"


def source_chart(app: str) -> str:
    return f"apps/{app}/chart"


@dataclass(frozen=True)
class Pins:
    """One release. ``chart_commit``/``chart_tree`` are empty in an environment whose chart follows ``main``."""

    repository: str
    tag: str
    digest: str  # "" or sha256:<64 hex>
    chart_commit: str = ""  # the commit of apps/<app>/chart the environment's copy was taken from
    chart_tree: str = ""  # the git tree id of that chart folder (and of the copy)

    @property
    def image(self) -> str:
        """`repo:tag@digest` (or `repo:tag` without a digest), as written in trailers and PR bodies."""
        ref = f"{self.repository}:{self.tag}"
        return f"{ref}@{self.digest}" if self.digest else ref

    @property
    def follows(self) -> bool:
        """The chart is apps/<app>/chart on main (the first environment), not a promoted copy."""
        return not self.chart_commit

    @property
    def revision(self) -> str:
        """Where the chart comes from, in one word: the commit it was copied from, or the branch it follows."""
        return self.chart_commit or FOLLOWED

    def same_image(self, other: Pins | None) -> bool:
        return other is not None and self.image == other.image

    def same_chart(self, other: Pins | None) -> bool:
        return other is not None and (self.chart_commit, self.chart_tree) == (other.chart_commit, other.chart_tree)

    def short_image(self) -> str:
        """`tag@sha256:0123abcd` — enough to tell two releases apart in a table."""
        return f"{self.tag}@{self.digest[:15]}" if self.digest else self.tag

    def short_revision(self) -> str:
        return self.chart_commit[:12] if self.chart_commit else FOLLOWED

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def _load(text: str, file: str) -> Any:
    try:
        data = yamlio.round_trip().load(text)
    except YAMLError as e:
        raise GitopsError(f"{file}: not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise GitopsError(f"{file}: expected a mapping with `image:` (and `chart:` in a promotion target)")
    return data


def parse(text: str, file: str, *, legacy: bool = False) -> Pins:
    """The release in a release.yaml, checked against its schema; an error names the file, the line and the key that
    is missing or malformed.

    ``legacy`` also reads the format from before promoted charts were copied (``chart.revision``: a branch, or the
    commit a promotion target rendered apps/<app>/chart at), for reading history: the tree is then unknown ("")."""
    data = _load(text, file)
    chart = data.get("chart")
    if isinstance(chart, dict) and "revision" in chart and "commit" not in chart:
        revision = str(chart.get("revision") or "")
        if legacy and (revision == FOLLOWED or git.SHA_RE.match(revision)):
            image = data.get("image") if isinstance(data.get("image"), dict) else {}
            commit = "" if revision == FOLLOWED else revision
            repository, tag, digest = (str(image.get(k, "")) for k in ("repository", "tag", "digest"))
            return Pins(repository, tag, digest, commit)
        raise GitopsError(
            f"{file}: `chart.revision` is the release format from before promoted charts were copied into the "
            "environment (docs/adr/0006-promoted-charts-are-copied-into-the-environment.md); a release names "
            "`chart.commit` and `chart.tree`"
        )
    return from_data(data, file)


def from_data(data: Any, file: str) -> Pins:
    """The release a parsed release.yaml names; GitopsError listing every way it breaks its schema."""
    from gitops.model import schema

    found = schema.problems(data, "release")
    if found:
        listed = "; ".join(f"line {line}: {message}" if line else message for message, line in found)
        raise GitopsError(f"{file}: {listed}")
    image, chart = data["image"], data.get("chart") or {}
    commit, tree = str(chart.get("commit", "")), str(chart.get("tree", ""))
    return Pins(str(image["repository"]), str(image["tag"]), str(image["digest"]), commit, tree)


def _like(old: Any, new: str) -> Any:
    """``new`` quoted the way ``old`` was, so a tag written as "0.1.0" stays quoted (plain strings that would read
    as numbers are quoted by the emitter anyway)."""
    if isinstance(old, DoubleQuotedScalarString):
        return DoubleQuotedScalarString(new)
    if isinstance(old, SingleQuotedScalarString):
        return SingleQuotedScalarString(new)
    return new


def _set(mapping: Any, key: str, value: str) -> None:
    old = mapping.get(key)
    if old is not None and str(old) == value:
        return  # untouched keys keep their exact bytes
    mapping[key] = DoubleQuotedScalarString(value) if value == "" else _like(old, value)


def update(text: str, pins: Pins, file: str) -> str:
    """``text`` holding ``pins``; comments, order and formatting of everything else kept."""
    data = _load(text, file)
    image = data.setdefault("image", {})
    for key in ("repository", "tag", "digest"):
        _set(image, key, getattr(pins, key))
    if pins.follows:
        data.pop("chart", None)
    else:
        chart = data.get("chart")
        if not isinstance(chart, dict):
            data["chart"] = chart = CommentedMap()
        for stale in [k for k in chart if k not in ("commit", "tree")]:
            del chart[stale]
        _set(chart, "commit", pins.chart_commit)
        _set(chart, "tree", pins.chart_tree)
    out = io.StringIO()
    yamlio.round_trip().dump(data, out)
    return out.getvalue()


def read(root: Path, env: str, app: str, rev: str | None = None) -> Pins | None:
    """The release of ``env``/``app`` in the work tree (``rev`` None) or at a commit; None when the file is absent."""
    path = release_file(env, app)
    if rev is None:
        file = root / path
        if not file.is_file():
            return None
        text = file.read_text()
    else:
        text = git.show(root, rev, path)
        if text is None:
            return None
    return parse(text, path if rev is None else f"{path} at {rev[:12]}")


@dataclass
class Layout:
    """What release changes need from the repository model (`gitops.model`): the promotion order and which apps each
    environment has a release for."""

    order: list[str]
    envs: list[str]  # folders under environments/
    apps: dict[str, list[str]]  # env -> apps with a release.yaml

    @property
    def promoted(self) -> set[str]:
        """Environments that receive releases by promotion (every one after the first): they hold chart copies."""
        return set(self.order[1:])

    def require_env(self, env: str) -> None:
        if env not in self.envs:
            known = ", ".join(self.envs) or "none"
            raise GitopsError(f"unknown environment {env!r}: environments/{env}/ does not exist (known: {known})")

    def require_app(self, env: str, app: str) -> None:
        if app not in self.apps.get(env, []):
            known = ", ".join(self.apps.get(env, [])) or "none"
            raise GitopsError(f"unknown app {app!r} in {env}: {release_file(env, app)} does not exist (known: {known})")


def layout(root: Path) -> Layout:
    from gitops import model as repo

    model = repo.load(root)
    apps: dict[str, list[str]] = {}
    for (env, app), ae in sorted(model.app_envs.items()):
        if (root / ae.release_file).is_file():
            apps.setdefault(env, []).append(app)
    return Layout(order=list(model.promotion.order), envs=list(model.environments), apps=apps)
