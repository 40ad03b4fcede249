"""Results of `gitops validate`'s checks, kept between runs under a key made of everything each result depends on.

A result is stored under the SHA-256 of its inputs (for a render: the chart's files, the values files, the
Application, the release, the pinned tools, Kubernetes version and capabilities, and this package's code; for a
kubeconform verdict: the document and the schema set; for yamllint: the file and the configuration). So there is
nothing to invalidate: a changed input is a different key, and a change to one app renders and checks only that
app again. A finding is stored as a finding, and a cache hit gives exactly what a cold run gives.

Where: ``$GITOPS_VALIDATE_CACHE``, else ``$XDG_CACHE_HOME/gitops/validate`` (``~/.cache/gitops/validate``), never in
the repository. Entries are written to a temporary file and renamed into place, so a reader sees a whole entry or
none; an entry that does not parse (a crash mid-write on a file system without atomic rename, a disk filling up) is
treated as missing and written again. Nothing is ever evicted: ``rm -rf`` the folder to reclaim the space.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import tempfile
import threading
from functools import cache
from pathlib import Path

import gitops

ENV_VAR = "GITOPS_VALIDATE_CACHE"
FORMAT = "1"  # bump when an entry's layout changes


def default_root() -> Path:
    explicit = os.environ.get(ENV_VAR)
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "gitops" / "validate"


def digest(*parts: str | bytes) -> str:
    """One SHA-256 of ``parts``, each length-prefixed so that no two different lists of parts collide."""
    h = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        h.update(f"{len(data)}:".encode())
        h.update(data)
    return h.hexdigest()


@cache
def code_version() -> str:
    """The package's version and a digest of its code (an edit in a work tree changes no version number), with the
    versions of the libraries that parse what the tools say: a result computed by other code is another result."""
    package = Path(gitops.__file__).parent
    sources = sorted(package.rglob("*.py"))
    versions = [f"{name} {_version(name)}" for name in ("gitops", "PyYAML", "ruamel.yaml", "jsonschema")]
    return digest(FORMAT, *versions, *(str(p.relative_to(package)) + "\0" + p.read_text() for p in sources))


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "?"


class Store:
    """Entries by kind ("render", "kubeconform", "yamllint") and key; counts hits and misses for the report."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.hits: dict[str, int] = {}
        self.misses: dict[str, int] = {}
        self._lock = threading.Lock()  # the platform's charts are looked up from a thread of their own

    def key(self, *parts: str | bytes) -> str:
        """The key of a result computed from ``parts`` by this code."""
        return digest(code_version(), *parts)

    def _path(self, kind: str, key: str) -> Path:
        return self.root / kind / key[:2] / f"{key}.json"

    def get(self, kind: str, key: str) -> dict | None:
        try:
            entry = json.loads(self._path(kind, key).read_text())
        except (OSError, ValueError):  # missing, unreadable, or cut short: a miss, rewritten by the next put
            entry = None
        hit = isinstance(entry, dict) and entry.get("key") == key and isinstance(entry.get("value"), dict)
        with self._lock:
            counts = self.hits if hit else self.misses
            counts[kind] = counts.get(kind, 0) + 1
        return entry["value"] if hit else None  # type: ignore[index]

    def put(self, kind: str, key: str, value: dict) -> None:
        path = self._path(kind, key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
            try:
                with os.fdopen(fd, "w") as f:
                    f.write(json.dumps({"key": key, "value": value}))  # dumps: C; dump to a file is pure Python
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError:
            pass  # a cache that cannot be written (read-only home, full disk) only costs the next run its time

    def stats(self) -> dict[str, int]:
        out = {}
        for kind in sorted({*self.hits, *self.misses}):
            out[f"{kind}_cached"] = self.hits.get(kind, 0)
            out[f"{kind}_computed"] = self.misses.get(kind, 0)
        return out
