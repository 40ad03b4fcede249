"""Reading the repository as it is in the work tree or as it was at a commit, through one interface.

Argo CD reads everything from git at a revision; `gitops render --ref` does the same. Without ``--ref`` the work
tree stands in for the tracked branch, so a developer sees their uncommitted change. Plain ``git`` subprocesses:
the handful of plumbing commands used here do not justify a library.
"""

from __future__ import annotations

import contextlib
import fnmatch
import io
import os
import re
import subprocess
import tarfile
import tempfile
import threading
from pathlib import Path

from gitops.errors import GitopsError

SHA_RE = re.compile(r"^[0-9a-f]{40}$")


class GitError(GitopsError):
    pass


def git(root: Path, *args: str, input: bytes | None = None) -> bytes:
    proc = subprocess.run(["git", "-C", str(root), *args], input=input, capture_output=True)
    if proc.returncode != 0:
        raise GitError(f"`git {' '.join(args)}` failed in {root}: {proc.stderr.decode(errors='replace').strip()}")
    return proc.stdout


def toplevel(path: Path) -> Path:
    """The root of the git work tree containing ``path``."""
    try:
        return Path(git(path, "rev-parse", "--show-toplevel").decode().strip())
    except GitError:
        raise GitError(f"{path} is not inside a git repository") from None


def resolve(root: Path, rev: str) -> str | None:
    """The commit a revision names (sha, branch, tag, remote branch), or None if it names none."""
    for candidate in (rev, f"origin/{rev}") if not SHA_RE.match(rev) else (rev,):
        proc = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--verify", "--quiet", f"{candidate}^{{commit}}"],
            capture_output=True,
        )
        if proc.returncode == 0:
            return proc.stdout.decode().strip()
    return None


def object_id(root: Path, spec: str) -> str | None:
    """The id of the object ``spec`` names (``<rev>:<path>`` for a tree or blob), or None when it names none."""
    proc = subprocess.run(["git", "-C", str(root), "rev-parse", "--verify", "--quiet", spec], capture_output=True)
    return proc.stdout.decode().strip() if proc.returncode == 0 else None


def changed_paths(root: Path, old: str, new: str) -> list[str]:
    """Paths that differ between two trees (or commits), relative to them; [] when either is unknown here."""
    proc = subprocess.run(["git", "-C", str(root), "diff", "--name-only", "-z", old, new], capture_output=True)
    return [p for p in proc.stdout.decode().split("\0") if p] if proc.returncode == 0 else []


def is_shallow(root: Path) -> bool:
    return git(root, "rev-parse", "--is-shallow-repository").decode().strip() == "true"


def commit_exists(root: Path, sha: str) -> bool:
    return (
        subprocess.run(["git", "-C", str(root), "cat-file", "-e", f"{sha}^{{commit}}"], capture_output=True).returncode
        == 0
    )


class Snapshot:
    """The files of the repository at one point: ``WorkTree`` or ``Commit``. Paths are repo-relative, posix."""

    root: Path
    label: str

    def files(self) -> list[str]:
        raise NotImplementedError

    def read(self, path: str) -> str | None:
        raise NotImplementedError

    def export(self, paths: list[str], dest: Path) -> Path:
        """A directory on disk holding ``paths`` (directories) as at this snapshot; returns the base to join."""
        raise NotImplementedError

    def glob(self, pattern: str) -> list[str]:
        """Files matching a git pathspec glob, sorted. As in `git ls-files -- <glob>` (how Argo CD's git files
        generator lists them), ``*`` also matches ``/``."""
        return sorted(f for f in self.files() if fnmatch.fnmatchcase(f, pattern))

    def exists(self, path: str) -> bool:
        return path in self._file_set()

    def is_dir(self, path: str) -> bool:
        prefix = path.rstrip("/") + "/"
        return any(f.startswith(prefix) for f in self.files())

    def children(self, path: str) -> list[str]:
        """Names of the directories directly under ``path``."""
        prefix = path.rstrip("/") + "/"
        names = {
            f[len(prefix) :].split("/", 1)[0] for f in self.files() if f.startswith(prefix) and "/" in f[len(prefix) :]
        }
        return sorted(names)

    def tree_id(self, path: str) -> str | None:
        """The git object id of the directory (or file) ``path`` as a commit of this snapshot would record it: equal
        ids mean byte-identical content, whatever the history. None when ``path`` does not exist."""
        raise NotImplementedError

    def _file_set(self) -> frozenset[str]:
        cached = getattr(self, "_files_cache", None)
        if cached is None:
            cached = frozenset(self.files())
            self._files_cache = cached
        return cached


class WorkTree(Snapshot):
    """The files a commit would contain now: tracked and untracked-but-not-ignored files that exist on disk."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.label = "work tree"
        self._files: list[str] | None = None

    def files(self) -> list[str]:
        if self._files is None:
            out = git(self.root, "ls-files", "--cached", "--others", "--exclude-standard", "-z")
            names = sorted({n for n in out.decode().split("\0") if n})
            self._files = [n for n in names if (self.root / n).is_file()]  # drop deleted-but-tracked files
        return self._files

    def read(self, path: str) -> str | None:
        try:
            return (self.root / path).read_text()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None

    def export(self, paths: list[str], dest: Path) -> Path:
        # The work tree is already on disk: nothing to copy.
        return self.root

    def tree_id(self, path: str) -> str | None:
        # Stage the folder into a throw-away index (the user's index is never touched) and let git write its tree:
        # exactly the id a commit of the work tree would give it, ignored files left out as a commit leaves them.
        if self.exists(path):  # a file: its blob id, with the same filters `git add` applies
            return git(self.root, "hash-object", "--", path).decode().strip()
        if not self.is_dir(path):
            return None
        with tempfile.TemporaryDirectory(prefix="gitops-index-") as tmp:
            env = {**os.environ, "GIT_INDEX_FILE": str(Path(tmp) / "index")}
            for args in (["add", "--", path], ["write-tree", f"--prefix={path.rstrip('/')}/"]):
                proc = subprocess.run(["git", "-C", str(self.root), *args], capture_output=True, env=env)
                if proc.returncode != 0:
                    raise GitError(f"`git {' '.join(args)}` failed in {self.root}: {proc.stderr.decode().strip()}")
            return proc.stdout.decode().strip()


class Commit(Snapshot):
    """The repository at a commit, read with `git cat-file --batch` (one process, not one per file)."""

    def __init__(self, root: Path, rev: str) -> None:
        sha = resolve(root, rev)
        if sha is None:
            raise GitError(f"{rev!r} names no commit in {root}")
        self.root = root
        self.rev = rev
        self.sha = sha
        self.label = rev if rev == sha else f"{rev} ({sha[:12]})"
        self._files: list[str] | None = None
        self._batch: subprocess.Popen | None = None
        self._lock = threading.Lock()
        self._exported: dict[str, Path] = {}

    def files(self) -> list[str]:
        if self._files is None:
            out = git(self.root, "ls-tree", "-r", "--name-only", "-z", self.sha)
            self._files = sorted(n for n in out.decode().split("\0") if n)
        return self._files

    def read(self, path: str) -> str | None:
        if not self.exists(path):
            return None
        with self._lock:
            if self._batch is None or self._batch.poll() is not None:
                self._batch = subprocess.Popen(
                    ["git", "-C", str(self.root), "cat-file", "--batch"],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL,
                )
            assert self._batch.stdin and self._batch.stdout
            self._batch.stdin.write(f"{self.sha}:{path}\n".encode())
            self._batch.stdin.flush()
            header = self._batch.stdout.readline().decode()
            if header.endswith("missing\n"):
                return None
            size = int(header.split()[2])
            data = self._batch.stdout.read(size)
            self._batch.stdout.read(1)  # the newline after each object
        return data.decode()

    def export(self, paths: list[str], dest: Path) -> Path:
        """`git archive <sha> <paths> | tar -x` once for all ``paths`` not yet exported; returns the base dir."""
        base = dest / self.sha
        with self._lock:
            todo = [p for p in paths if p not in self._exported]
            if todo:
                base.mkdir(parents=True, exist_ok=True)
                data = git(self.root, "archive", "--format=tar", self.sha, "--", *todo)
                with tarfile.open(fileobj=io.BytesIO(data)) as tar:
                    tar.extractall(base, filter="data")
                for p in todo:
                    self._exported[p] = base / p
        return base

    def tree_id(self, path: str) -> str | None:
        return object_id(self.root, f"{self.sha}:{path.rstrip('/')}")

    def close(self) -> None:
        if self._batch and self._batch.poll() is None:
            assert self._batch.stdin
            self._batch.stdin.close()
            self._batch.wait()

    def __del__(self) -> None:  # the batch process must not outlive us
        with contextlib.suppress(Exception):  # at interpreter shutdown there is nothing left to report to
            self.close()


def snapshot(root: Path, ref: str | None) -> Snapshot:
    return WorkTree(root) if ref is None else Commit(root, ref)
