"""`gitops bump`: the build workflow's one write to the repository — a freshly built image into the first
environment's release.yaml, as a commit whose trailers name the app commit it was built from.

Only environments that are not promotion targets can be bumped (dev): prod receives releases by `gitops promote`,
through a reviewed PR, never straight from a build.
"""

from __future__ import annotations

import re
from pathlib import Path

from gitops import git
from gitops.errors import GitopsError
from gitops.model import release
from gitops.model.release import Pins
from gitops.release import history
from gitops.release import transaction as change

# `registry[:port]/path/name:tag`, optionally `@sha256:…`; the tag is after the last colon of the last path part.
IMAGE_RE = re.compile(r"^(?P<repo>[^\s@]+?/[^\s:@/]+|[^\s:@/]+):(?P<tag>[\w][\w.-]{0,127})(?:@(?P<digest>\S+))?$")


def parse_image(image: str, digest: str | None) -> tuple[str, str, str]:
    m = IMAGE_RE.match(image)
    if not m:
        raise GitopsError(f"--image {image!r}: expected REPOSITORY:TAG (e.g. docker.io/azurelaboratory/app:0.2.0)")
    inline = m.group("digest") or ""
    if inline and digest and inline != digest:
        raise GitopsError(f"--image carries digest {inline} but --digest is {digest}")
    d = digest or inline
    if d and not release.DIGEST_RE.match(d):
        raise GitopsError(f"--digest {d!r}: expected sha256:<64 hex>")
    return m.group("repo"), m.group("tag"), d


def _newer_build(root: Path, env: str, app: str, source: str) -> str | None:
    """The source commit of the last bump of ``app`` in ``env`` when it descends from ``source``: a newer build
    already landed, and this one must not replace it."""
    last = next((e for e in history.events(root, env=env, app=app) if e.kind == "bump" and e.source_commit), None)
    if last is None or last.source_commit == source or git.rev_parse(root, last.source_commit) is None:
        return None
    return last.source_commit if git.is_ancestor(root, source, last.source_commit) else None


def bump(root: Path, env: str, app: str, image: str, digest: str | None, source_commit: str | None) -> str:
    git.require_clean(root, "bump")
    layout = release.layout(root)
    layout.require_env(env)
    if env in layout.promoted:
        first = layout.order[0] if layout.order else "dev"
        raise GitopsError(
            f"{env} is a promotion target (it runs promoted releases: image and chart copy); builds bump {first} "
            f"only, and {env} receives releases by `gitops promote`"
        )
    layout.require_app(env, app)
    repository, tag, d = parse_image(image, digest)
    base = git.head(root)
    source = base
    if source_commit:
        resolved = git.rev_parse(root, source_commit)
        if resolved is None:
            raise GitopsError(f"--source-commit {source_commit!r} names no commit in this clone")
        source = resolved
    path = release.release_file(env, app)
    current = release.read(root, env, app)
    assert current is not None
    stale = _newer_build(root, env, app, source)
    if stale:
        return (
            f"skipped: {env}/{app} already runs a build of {stale[:12]}, which is newer than {source[:12]} "
            "(builds of successive pushes finished out of order)\n"
        )
    pins = Pins(repository, tag, d, current.chart_commit, current.chart_tree)
    if pins == current:
        return f"nothing to bump: {env}/{app} already runs {pins.image}\n"
    subject = f"bump({env}): {app} {history.describe(current, pins)}"
    body = f"Built from {source[:12]}.\n\n- image {current.image} → {pins.image}"
    msg = git.with_trailers(
        subject + "\n\n" + body,
        [(history.BUMPED, env), (history.APP, app), (history.IMAGE, pins.image), (history.SOURCE_COMMIT, source)],
    )
    c = change.Change(
        files={path: release.update((root / path).read_text(), pins, path)},
        message=msg,
        validate_envs=[env],
        what=f"the bump of {app} in {env}",
    )
    sha = change.apply(root, c, base)
    return f"bumped {env} in {sha[:12]}: {app} {history.describe(current, pins)}\n"
