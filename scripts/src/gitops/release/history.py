"""The timeline of every environment, read from git alone: each change to what an environment runs or how it is
configured, who prepared it, and who merged it and when it reached the tracked branch.

What a commit did is read from the files it changed under ``environments/<env>/<app>/``:

- ``release.yaml``: a release change. Its kind comes from the commit's trailers — a promotion (`gitops promote`:
  ``Promoted-From``, ``Promoted-To``, ``Source-Commit``), a rollback (`gitops rollback`: ``Rollback-Of``,
  ``Rolled-Back-To``, ``Environment``), a build (`gitops bump`: ``Bumped``, ``Source-Commit``) — and without
  trailers it is ``release`` (an app's first release, or an edit by hand). Per app: ``App``, ``Image``,
  ``Chart-Commit``.
- ``values.yaml``: ``values``, the environment's overlay, with the keys that changed.

What each change moved *from* is not stored: it is the file at the commit's first parent. Who merged it is the
first-parent commit of the tracked branch that brought it in: a merge commit's author and date, or on a fast-forward
or rebase the commit itself as committed (committer and commit date).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from gitops import git, yamlio
from gitops.errors import GitopsError
from gitops.model import release
from gitops.model.release import Pins

PROMOTED_FROM = "Promoted-From"
PROMOTED_TO = "Promoted-To"
SOURCE_COMMIT = "Source-Commit"
APP = "App"
IMAGE = "Image"
CHART_COMMIT = "Chart-Commit"
ROLLBACK_OF = "Rollback-Of"
ROLLED_BACK_TO = "Rolled-Back-To"
ENVIRONMENT = "Environment"
BUMPED = "Bumped"

RELEASE_KINDS = ("promote", "rollback", "bump", "release")
_KEYS = (PROMOTED_FROM, PROMOTED_TO, SOURCE_COMMIT, APP, IMAGE, CHART_COMMIT, ROLLBACK_OF, ROLLED_BACK_TO,
         ENVIRONMENT, BUMPED)  # fmt: skip
_FIELDS = ("%H", "%P", "%an", "%ae", "%aI", "%s")
_MAINLINE = ("%H", "%P", "%an", "%ae", "%aI", "%cn", "%ce", "%cI")


@dataclass
class AppChange:
    app: str
    old: Pins | None  # None: the app had no release in this environment before
    new: Pins | None  # None: removed
    values: list[tuple[str, Any, Any]] = field(default_factory=list)  # (dotted key, old, new) for kind `values`

    def to_dict(self) -> dict:
        return {
            "app": self.app,
            "old": self.old.to_dict() if self.old else None,
            "new": self.new.to_dict() if self.new else None,
            "values": [{"key": k, "old": o, "new": n} for k, o, n in self.values],
        }


@dataclass
class Merge:
    """How a change reached the tracked branch."""

    commit: str  # the first-parent commit that brought it in (the change itself on a fast-forward or rebase)
    by: str
    email: str
    date: str


@dataclass
class Event:
    kind: str  # promote | rollback | bump | release | values
    sha: str
    parent: str | None
    author: str  # who prepared it (the commit's author)
    email: str
    date: str  # ISO 8601 with offset, the author date
    subject: str
    env: str
    source_env: str = ""  # promotions: where the release came from
    source_commit: str = ""
    rollback_of: str = ""
    rolled_back_to: str = ""
    apps: list[AppChange] = field(default_factory=list)
    merged: Merge | None = None  # None: not on the tracked branch (or beyond a shallow clone's boundary)

    def app(self, name: str) -> AppChange | None:
        return next((a for a in self.apps if a.app == name), None)

    def to_dict(self) -> dict:
        return {
            "kind": self.kind,
            "commit": self.sha,
            "parent": self.parent,
            "date": self.date,
            "author": self.author,
            "email": self.email,
            "merged": asdict(self.merged) if self.merged else None,
            "subject": self.subject,
            "env": self.env,
            "source_env": self.source_env or None,
            "source_commit": self.source_commit or None,
            "rollback_of": self.rollback_of or None,
            "rolled_back_to": self.rolled_back_to or None,
            "apps": [a.to_dict() for a in self.apps],
        }


def _pins(blobs: git.BlobReader, rev: str | None, env: str, app: str) -> Pins | None:
    if rev is None:
        return None
    path = release.release_file(env, app)
    text = blobs.read(rev, path)
    if text is None:
        return None
    try:
        return release.parse(text, f"{path} at {rev[:12]}", legacy=True)
    except GitopsError:
        return None  # a broken file in an old commit must not hide the rest of the history


def _values(blobs: git.BlobReader, rev: str | None, env: str, app: str) -> Any:
    if rev is None:
        return None
    path = f"environments/{env}/{app}/values.yaml"
    return load_values(blobs.read(rev, path), path)


def _format() -> str:
    trailers = [f"%(trailers:key={k},valueonly,separator=%x1d)" for k in _KEYS]
    return "%x1e" + "%x1f".join([*_FIELDS, *trailers]) + "%x1f"


class Mainline:
    """The first-parent chain of the tracked branch, to find the commit that brought a change in."""

    def __init__(self, root: Path, rev: str) -> None:
        self.root = root
        out = git.run(root, "log", "--first-parent", f"--format={'%x1f'.join(_MAINLINE)}%x1e", rev, "--")
        self.commits: list[list[str]] = [r.strip("\n").split(git.FS) for r in out.split(git.RS) if r.strip()]
        self.index = {c[0]: i for i, c in enumerate(self.commits)}  # newest first

    def merge_of(self, sha: str) -> Merge | None:
        i = self.index.get(sha)
        if i is None:
            # The oldest mainline commit that has ``sha`` in its history: ancestry holds for every newer one, so a
            # binary search over the first-parent chain finds it.
            lo, hi = 0, len(self.commits) - 1
            if hi < 0 or not git.is_ancestor(self.root, sha, self.commits[0][0]):
                return None
            while lo < hi:
                mid = (lo + hi + 1) // 2
                if git.is_ancestor(self.root, sha, self.commits[mid][0]):
                    lo = mid
                else:
                    hi = mid - 1
            i = lo
        sha_m, parents, an, ae, ad, cn, ce, cd = self.commits[i]
        if len(parents.split()) > 1:
            return Merge(sha_m, an, ae, ad)  # a merge commit: who merged is its author
        return Merge(sha_m, cn, ce, cd)  # fast-forward or rebase: the commit as it was committed to the branch


def shallow_warning(root: Path) -> str | None:
    """What a reader of the history of a shallow clone must be told: it ends at the clone's boundary."""
    if git.is_shallow(root):
        return (
            f"warning: {root} is a shallow clone: history stops at its shallow boundary "
            "(`git fetch --unshallow` for all of it)"
        )
    return None


def events(root: Path, env: str | None = None, app: str | None = None, rev: str = "HEAD") -> list[Event]:
    """Every change to a release or an overlay reachable from ``rev``, newest first, optionally for one env/app."""
    env_glob = env or "*"
    app_glob = app or "*"
    paths = [f":(glob)environments/{env_glob}/{app_glob}/{name}" for name in ("release.yaml", "values.yaml")]
    out = git.run(root, "log", "--name-only", f"--format={_format()}", rev, "--", *paths)
    mainline = Mainline(root, rev)
    result: list[Event] = []
    with git.BlobReader(root) as blobs:
        for record in out.split(git.RS):
            if not record.strip():
                continue
            for event in _events(record, blobs):
                if (env and event.env != env) or (app and event.app(app) is None):
                    continue
                event.merged = mainline.merge_of(event.sha)
                result.append(event)
    return result


def _events(record: str, blobs: git.BlobReader) -> list[Event]:
    parts = record.split(git.FS)
    sha, parents, author, email, date, subject = parts[: len(_FIELDS)]
    t = {k: [v for v in parts[len(_FIELDS) + i].split(git.LS) if v] for i, k in enumerate(_KEYS)}
    files = [f for f in parts[len(_FIELDS) + len(_KEYS)].split("\n") if f]
    parent = parents.split()[0] if parents else None

    def one(key: str) -> str:
        return t[key][-1] if t[key] else ""

    releases: dict[str, list[str]] = {}
    overlays: dict[str, list[str]] = {}
    for f in files:
        segments = f.split("/")
        if len(segments) == 4 and segments[0] == "environments":
            target = releases if segments[3] == "release.yaml" else overlays
            target.setdefault(segments[1], []).append(segments[2])

    base = {"sha": sha, "parent": parent, "author": author, "email": email, "date": date, "subject": subject}
    out: list[Event] = []
    for env, apps in sorted(releases.items()):
        if t[PROMOTED_TO] and one(PROMOTED_TO) == env:
            kind = "promote"
        elif t[ROLLBACK_OF] and one(ENVIRONMENT) == env:
            kind = "rollback"
        elif t[BUMPED] and one(BUMPED) == env:
            kind = "bump"
        else:
            kind = "release"
        changes = [AppChange(a, _pins(blobs, parent, env, a), _pins(blobs, sha, env, a)) for a in sorted(apps)]
        out.append(
            Event(
                kind=kind,
                env=env,
                source_env=one(PROMOTED_FROM) if kind == "promote" else "",
                source_commit=one(SOURCE_COMMIT) if kind in ("promote", "bump") else "",
                rollback_of=one(ROLLBACK_OF) if kind == "rollback" else "",
                rolled_back_to=one(ROLLED_BACK_TO) if kind == "rollback" else "",
                apps=changes,
                **base,
            )
        )
    for env, apps in sorted(overlays.items()):
        changes = []
        for a in sorted(apps):
            old, new = _values(blobs, parent, env, a), _values(blobs, sha, env, a)
            changes.append(AppChange(a, None, None, values_changes(old, new)))
        out.append(Event(kind="values", env=env, apps=changes, **base))
    return out


def load_values(text: str | None, file: str) -> Any:
    """An overlay as plain data; None when absent or unreadable (an old broken file must not stop a history)."""
    if text is None:
        return None
    try:
        return yamlio.plain(yamlio.load(text, file)) or {}
    except yamlio.YamlError:
        return None


def _flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, dict) and node:
        out: dict[str, Any] = {}
        for k, v in node.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix or ".": node}


def values_changes(old: Any, new: Any) -> list[tuple[str, Any, Any]]:
    """(dotted key, old, new) for every leaf that differs; a missing side is None (a file added or removed)."""
    a = _flatten(old) if old is not None else {}
    b = _flatten(new) if new is not None else {}
    return [(k, a.get(k), b.get(k)) for k in sorted(a.keys() | b.keys()) if a.get(k) != b.get(k)]


def describe(old: Pins | None, new: Pins | None) -> str:
    """A commit subject's account of a move: `0.1.0 → 0.2.0` when the image moved (tags only when they differ: the
    digests are in the trailers), else `chart 38fcd4e53609 → 1b2c3d4e5f60`."""
    if new is None:
        return "removed"
    if old is None:
        return f"{new.short_image()} (chart {new.short_revision()}) (new)"
    if old.image != new.image:
        return _image_move(old, new)
    if not old.same_chart(new):
        return f"chart {old.short_revision()} → {new.short_revision()}"
    return "unchanged"


def describe_values(changes: list[tuple[str, Any, Any]], limit: int = 3) -> str:
    """`autoscaling.minReplicas 2 → 4, resources.limits.cpu 1 → 2 (+3 more)`."""
    if not changes:
        return "values unchanged"

    def show(v: Any) -> str:
        return "∅" if v is None else str(v)

    parts = [f"{k} {show(o)} → {show(n)}" for k, o, n in changes[:limit]]
    more = f" (+{len(changes) - limit} more)" if len(changes) > limit else ""
    return ", ".join(parts) + more


def table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in [header, *rows]]
    return "\n".join(lines) + "\n"


def _image_move(old: Pins | None, new: Pins | None) -> str:
    if new is None:
        return "removed"
    if old is None:
        return f"{new.short_image()} (new)"
    if old.image == new.image:
        return "="
    if old.repository == new.repository and old.tag != new.tag:
        return f"{old.tag} → {new.tag}"
    return f"{old.short_image()} → {new.short_image()}"


def _chart_move(old: Pins | None, new: Pins | None) -> str:
    if new is None:
        return "removed"
    if old is None:
        return new.short_revision()
    if old.same_chart(new):
        return "="
    return f"{old.short_revision()} → {new.short_revision()}"


def _how(e: Event) -> str:
    return {
        "promote": f"from {e.source_env}",
        "rollback": f"to {e.rolled_back_to[:12]}",
        "bump": "build",
        "release": "by hand",
        "values": "overlay",
    }[e.kind]


def _merged(e: Event) -> str:
    if e.merged is None:
        return "not on main"
    return f"{e.merged.date} {e.merged.by}" + (f" ({e.merged.commit[:12]})" if e.merged.commit != e.sha else "")


def render_text(evs: list[Event]) -> str:
    if not evs:
        return "no release or values change recorded\n"
    rows = []
    for e in evs:
        for a in e.apps:
            if e.kind == "values":
                image, chart = "=", describe_values(a.values)
            else:
                image, chart = _image_move(a.old, a.new), _chart_move(a.old, a.new)
            rows.append([_merged(e), e.kind, e.env, a.app, image, chart, _how(e), e.author, e.sha[:12]])
    return table(rows, ["MERGED", "KIND", "ENV", "APP", "IMAGE", "CHART / VALUES", "HOW", "PREPARED BY", "COMMIT"])


def require_known(root: Path, env: str | None, app: str | None, found: list[Event]) -> None:
    """An environment or app that is neither in the repository nor in the history it was asked about is a typo, not
    an empty history."""
    if found:
        return
    layout = release.layout(root)
    if env is not None and env not in layout.envs and env not in layout.order:
        known = ", ".join(layout.envs) or "none"
        raise GitopsError(f"unknown environment {env!r}: environments/{env}/ does not exist (known: {known})")
    apps = {a for listed in layout.apps.values() for a in listed} | {
        p.name for p in (root / "apps").iterdir() if (p / "chart").is_dir()
    }
    if app is not None and app not in apps:
        known = ", ".join(sorted(apps)) or "none"
        raise GitopsError(f"unknown app {app!r}: no apps/{app}/ and no environment runs it (known: {known})")
