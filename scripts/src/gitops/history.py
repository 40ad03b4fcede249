"""The release history of the repository, read from commit trailers alone.

Every release change is one commit whose trailers say what it was:

- a promotion (`gitops promote`): ``Promoted-From``, ``Promoted-To``, ``Source-Commit`` and, per app, ``App``,
  ``Image``, ``Chart-Revision``;
- a rollback (`gitops rollback`): ``Rollback-Of``, ``Rolled-Back-To``, ``Environment``, ``App``, ``Image``,
  ``Chart-Revision``;
- a build (`gitops bump`, run by the build workflow): ``Bumped`` (the environment), ``App``, ``Image``,
  ``Source-Commit`` (the app commit the image was built from).

What each change moved *from* is not stored: it is the release.yaml at the commit's first parent, so a fresh clone
with full history needs nothing else. Per-app trailers are lists in the same order (n-th App ↔ n-th Image).
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from gitops import gitutil, release
from gitops.errors import GitopsError
from gitops.release import Pins

PROMOTED_FROM = "Promoted-From"
PROMOTED_TO = "Promoted-To"
SOURCE_COMMIT = "Source-Commit"
APP = "App"
IMAGE = "Image"
CHART_REVISION = "Chart-Revision"
ROLLBACK_OF = "Rollback-Of"
ROLLED_BACK_TO = "Rolled-Back-To"
ENVIRONMENT = "Environment"
BUMPED = "Bumped"

_KEYS = (PROMOTED_FROM, PROMOTED_TO, SOURCE_COMMIT, APP, IMAGE, CHART_REVISION, ROLLBACK_OF, ROLLED_BACK_TO,
         ENVIRONMENT, BUMPED)  # fmt: skip
_FIELDS = ("%H", "%P", "%an", "%ae", "%aI", "%s")


@dataclass
class AppChange:
    app: str
    old: Pins | None  # None: the app had no release.yaml in this environment before
    new: Pins | None

    def to_dict(self) -> dict:
        return {
            "app": self.app,
            "old": self.old.to_dict() if self.old else None,
            "new": self.new.to_dict() if self.new else None,
        }


@dataclass
class Event:
    kind: str  # promote | rollback | bump
    sha: str
    parent: str | None
    author: str
    email: str
    date: str  # ISO 8601 with offset, the author date
    subject: str
    env: str
    source_env: str = ""  # promotions: where the release came from
    source_commit: str = ""
    rollback_of: str = ""
    rolled_back_to: str = ""
    apps: list[AppChange] = field(default_factory=list)

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
            "subject": self.subject,
            "env": self.env,
            "source_env": self.source_env or None,
            "source_commit": self.source_commit or None,
            "rollback_of": self.rollback_of or None,
            "rolled_back_to": self.rolled_back_to or None,
            "apps": [a.to_dict() for a in self.apps],
        }


class BlobReader:
    """Files at commits through one `git cat-file --batch` process: history reads two release.yaml per event."""

    def __init__(self, root: Path) -> None:
        self._proc = subprocess.Popen(
            ["git", "-C", str(root), "cat-file", "--batch"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )

    def read(self, rev: str, path: str) -> str | None:
        assert self._proc.stdin and self._proc.stdout
        self._proc.stdin.write(f"{rev}:{path}\n".encode())
        self._proc.stdin.flush()
        header = self._proc.stdout.readline().decode()
        if header.endswith(" missing\n") or not header:
            return None
        size = int(header.split()[2])
        data = self._proc.stdout.read(size)
        self._proc.stdout.read(1)  # the newline after each object
        return data.decode()

    def pins(self, rev: str | None, env: str, app: str) -> Pins | None:
        if rev is None:
            return None
        path = release.release_file(env, app)
        text = self.read(rev, path)
        if text is None:
            return None
        try:
            return release.parse(text, f"{path} at {rev[:12]}")
        except GitopsError:
            return None  # a broken file in an old commit must not hide the rest of the history

    def close(self) -> None:
        if self._proc.poll() is None:
            assert self._proc.stdin
            self._proc.stdin.close()
            self._proc.wait()

    def __enter__(self) -> BlobReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _format() -> str:
    trailers = [f"%(trailers:key={k},valueonly,separator=%x1d)" for k in _KEYS]
    return "%x1f".join([*_FIELDS, *trailers]) + "%x1e"


def events(root: Path, env: str | None = None, app: str | None = None, rev: str = "HEAD") -> list[Event]:
    """Every promotion, rollback and bump reachable from ``rev``, newest first, optionally for one env and/or app."""
    if gitutil.is_shallow(root):
        print(
            f"warning: {root} is a shallow clone: history stops at its shallow boundary "
            "(`git fetch --unshallow` for all of it)",
            file=sys.stderr,
        )
    # Every parent is walked: a promotion PR merged with a merge commit sits on the second parent.
    # --grep narrows the walk to release commits cheaply; the trailers themselves decide what each commit is.
    out = gitutil.run(
        root,
        "log",
        "-E",
        f"--grep=^({PROMOTED_TO}|{ROLLBACK_OF}|{BUMPED}): ",
        f"--format={_format()}",
        rev,
        "--",
    )
    result: list[Event] = []
    with BlobReader(root) as blobs:
        for record in out.split(gitutil.RS):
            record = record.strip("\n")
            if not record:
                continue
            event = _event(record, blobs)
            if event is None or (env and event.env != env) or (app and event.app(app) is None):
                continue
            result.append(event)
    return result


def _event(record: str, blobs: BlobReader) -> Event | None:
    parts = record.split(gitutil.FS)
    sha, parents, author, email, date, subject = parts[: len(_FIELDS)]
    t = {k: [v for v in parts[len(_FIELDS) + i].split(gitutil.LS) if v] for i, k in enumerate(_KEYS)}

    def one(key: str) -> str:
        return t[key][-1] if t[key] else ""

    if t[PROMOTED_TO]:
        kind, env = "promote", one(PROMOTED_TO)
    elif t[ROLLBACK_OF]:
        kind, env = "rollback", one(ENVIRONMENT)
    elif t[BUMPED]:
        kind, env = "bump", one(BUMPED)
    else:
        return None
    parent = parents.split()[0] if parents else None
    apps = [AppChange(a, blobs.pins(parent, env, a), blobs.pins(sha, env, a)) for a in t[APP]]
    return Event(
        kind=kind,
        sha=sha,
        parent=parent,
        author=author,
        email=email,
        date=date,
        subject=subject,
        env=env,
        source_env=one(PROMOTED_FROM),
        source_commit=one(SOURCE_COMMIT),
        rollback_of=one(ROLLBACK_OF),
        rolled_back_to=one(ROLLED_BACK_TO),
        apps=apps,
    )


def describe(old: Pins | None, new: Pins | None) -> str:
    """A commit subject's account of a move: `0.1.0 → 0.2.0` when the image moved (tags only when they differ: the
    digests are in the trailers), else `chart 38fcd4e53609 → 1b2c3d4e5f60`."""
    if new is None:
        return "removed"
    if old is None:
        return f"{new.short_image()} ({new.short_revision()}) (new)"
    if old.image != new.image:
        return _image_move(old, new)
    if old.revision != new.revision:
        return f"chart {old.short_revision()} → {new.short_revision()}"
    return "unchanged"


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
    if old is None or old.revision == new.revision:
        return new.short_revision() if old is None else "="
    return f"{old.short_revision()} → {new.short_revision()}"


def render_text(evs: list[Event]) -> str:
    if not evs:
        return "no promotions, rollbacks or bumps recorded\n"
    rows = []
    for e in evs:
        origin = {"promote": f"from {e.source_env}", "rollback": f"to {e.rolled_back_to[:12]}"}.get(e.kind, "build")
        for a in e.apps:
            image, chart = _image_move(a.old, a.new), _chart_move(a.old, a.new)
            rows.append([e.date, e.kind, e.env, a.app, image, chart, origin, e.author, e.sha[:12]])
    return table(rows, ["DATE", "KIND", "ENV", "APP", "IMAGE", "CHART REVISION", "HOW", "BY", "COMMIT"])
