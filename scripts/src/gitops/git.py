"""Git, in one place: every git command the tooling runs goes through this module.

Reading: the repository as it is in the work tree or as it was at a commit (``Snapshot``: ``WorkTree``, ``Commit``),
files at commits through one ``cat-file --batch`` process (``BlobReader``), refs, trees and history. Argo CD reads
everything from git at a revision; `gitops render --ref` does the same, and without ``--ref`` the work tree stands in
for the tracked branch, so a developer sees their uncommitted change.

Writing: every release change is one commit, built and validated in a scratch worktree outside the user's tree
(``Scratch``) and only then fast-forwarded into it (``land``), with trailers that are the audit log
(``with_trailers``). Plain ``git`` subprocesses: every command used here exists in git 2.39 (Debian 12), the oldest
git supported.
"""

from __future__ import annotations

import contextlib
import fnmatch
import io
import os
import re
import shutil
import signal
import subprocess
import tarfile
import tempfile
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

from gitops.errors import GitopsError

SHA_RE = re.compile(r"^[0-9a-f]{40}$")
# Record/field/list separators for `git log --format`: control characters no commit message or trailer contains.
RS, FS, LS = "\x1e", "\x1f", "\x1d"


class GitError(GitopsError):
    """A git command failed: names the command, the repository and git's own message."""


def run_bytes(root: Path, *args: str, input: bytes | None = None) -> bytes:
    """Run git in ``root``; its raw stdout (archives, NUL-separated listings)."""
    proc = subprocess.run(["git", "-C", str(root), *args], input=input, capture_output=True)
    if proc.returncode != 0:
        raise GitError(f"`git {' '.join(args)}` failed in {root}: {proc.stderr.decode(errors='replace').strip()}")
    return proc.stdout


def run(root: Path, *args: str, input: str | None = None, env: dict[str, str] | None = None) -> str:
    """Run git in ``root``; its stdout as text, or GitError naming the command and git's own message."""
    proc = subprocess.run(
        ["git", "-C", str(root), *args],
        input=input,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
    )
    if proc.returncode != 0:
        raise GitError(f"`git {' '.join(args)}` failed in {root}: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout


def attempt(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run git in ``root`` and return how it went, whatever its exit code: for callers that act on a refusal (a
    rejected push, a rebase that does not apply)."""
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True)


def toplevel(path: Path) -> Path:
    """The root of the work tree holding ``path``; a clear error outside a repository."""
    proc = subprocess.run(["git", "-C", str(path), "rev-parse", "--show-toplevel"], capture_output=True, text=True)
    if proc.returncode != 0:
        raise GitError(f"{path} is not inside a git repository (gitops works on a clone of the monorepo)")
    return Path(proc.stdout.strip())


def rev_parse(root: Path, rev: str) -> str | None:
    """The commit ``rev`` names, or None."""
    proc = subprocess.run(
        ["git", "-C", str(root), "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"],
        capture_output=True,
        text=True,
    )
    return proc.stdout.strip() if proc.returncode == 0 else None


def resolve(root: Path, rev: str) -> str | None:
    """The commit a revision names (sha, branch, tag, or a branch only the remote has), or None."""
    found = rev_parse(root, rev)
    if found is None and not SHA_RE.match(rev):
        found = rev_parse(root, f"origin/{rev}")
    return found


def object_id(root: Path, spec: str) -> str | None:
    """The id of the object ``spec`` names (``<rev>:<path>`` for a tree or blob), or None when it names none."""
    proc = subprocess.run(["git", "-C", str(root), "rev-parse", "--verify", "--quiet", spec], capture_output=True)
    return proc.stdout.decode().strip() if proc.returncode == 0 else None


def object_ids(root: Path, specs: list[str]) -> dict[str, str | None]:
    """``object_id`` of many specs (``<rev>^{commit}``, ``<rev>:<path>``…) with one `git cat-file --batch-check`."""
    specs = list(dict.fromkeys(specs))
    if not specs or any("\n" in s for s in specs):
        return {s: object_id(root, s) for s in specs}
    proc = subprocess.run(
        ["git", "-C", str(root), "cat-file", "--batch-check=%(objectname)"],
        input="".join(f"{s}\n" for s in specs),
        capture_output=True,
        text=True,
    )
    lines = proc.stdout.splitlines()
    if proc.returncode != 0 or len(lines) != len(specs):
        return {s: object_id(root, s) for s in specs}
    # A found object prints its id; one that is not, "<spec> missing" (or "ambiguous").
    return {s: line if OBJECT_ID_RE.fullmatch(line) else None for s, line in zip(specs, lines, strict=True)}


OBJECT_ID_RE = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")


def tree_id(root: Path, rev: str, path: str) -> str | None:
    """The tree (or blob) id of ``path`` at ``rev``: equal ids mean identical content, whatever the history."""
    return object_id(root, f"{rev}:{path.rstrip('/')}")


def changed_paths(root: Path, old: str, new: str) -> list[str]:
    """Paths that differ between two trees (or commits), relative to them; [] when either is unknown here."""
    proc = subprocess.run(["git", "-C", str(root), "diff", "--name-only", "-z", old, new], capture_output=True)
    return [p for p in proc.stdout.decode().split("\0") if p] if proc.returncode == 0 else []


def is_shallow(root: Path) -> bool:
    return run(root, "rev-parse", "--is-shallow-repository").strip() == "true"


class BlobReader:
    """Files at commits through one `git cat-file --batch` process (not one process per file)."""

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

    def close(self) -> None:
        if self._proc.poll() is None:
            assert self._proc.stdin
            self._proc.stdin.close()
            self._proc.wait()

    def __enter__(self) -> BlobReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


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
        return path.rstrip("/") in self._dir_index()

    def children(self, path: str) -> list[str]:
        """Names of the directories directly under ``path``."""
        return sorted(self._dir_index().get(path.rstrip("/"), ()))

    def _dir_index(self) -> dict[str, set[str]]:
        """Every directory holding a file (at any depth), with the names of the directories directly under it: built
        once, so that asking about a thousand apps' folders does not read the list of files a thousand times."""
        cached = getattr(self, "_dirs_cache", None)
        if cached is None:
            cached = {}
            for f in self.files():
                parts = f.split("/")[:-1]
                for n in range(1, len(parts) + 1):
                    cached.setdefault("/".join(parts[:n]), set())
                    if n < len(parts):
                        cached["/".join(parts[:n])].add(parts[n])
            self._dirs_cache = cached
        return cached

    def tree_id(self, path: str) -> str | None:
        """The git object id of the directory (or file) ``path`` as a commit of this snapshot would record it: equal
        ids mean byte-identical content, whatever the history. None when ``path`` does not exist."""
        raise NotImplementedError

    def tree_ids(self, paths: list[str]) -> dict[str, str | None]:
        """``tree_id`` of each of ``paths``."""
        return {p: self.tree_id(p) for p in paths}

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
            out = run_bytes(self.root, "ls-files", "--cached", "--others", "--exclude-standard", "-z")
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
        if self.exists(path):  # a file: its blob id, with the same filters `git add` applies
            return run(self.root, "hash-object", "--", path).strip()
        if not self.is_dir(path):
            return None
        return self._staged_trees([path.rstrip("/")])[path.rstrip("/")]

    def tree_ids(self, paths: list[str]) -> dict[str, str | None]:
        """``tree_id`` of many paths, the directories among them with three git processes in all, not two each."""
        dirs = [p.rstrip("/") for p in dict.fromkeys(paths) if not self.exists(p) and self.is_dir(p)]
        out = {p: self.tree_id(p) for p in paths if p.rstrip("/") not in dirs}
        if not dirs:
            return out
        try:
            by_dir = self._staged_trees(dirs)
        except GitError:  # one of them cannot be staged: each on its own, to say which
            return {**out, **{p: self.tree_id(p) for p in paths if p not in out}}
        out.update({p: by_dir[p.rstrip("/")] for p in paths if p.rstrip("/") in by_dir})
        return out

    def _staged_trees(self, dirs: list[str]) -> dict[str, str]:
        """Stage the folders into a throw-away index (the user's index is never touched) and let git write its tree:
        each folder's id is exactly the one a commit of the work tree would give it, ignored files left out as a
        commit leaves them."""
        with tempfile.TemporaryDirectory(prefix="gitops-index-") as tmp:
            env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
            run(self.root, "add", "--", *dirs, env=env)
            root_tree = run(self.root, "write-tree", env=env).strip()
            ids = run(self.root, "rev-parse", *(f"{root_tree}:{d}" for d in dirs), env=env).split()
        return dict(zip(dirs, ids, strict=True))


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
        self._blobs: BlobReader | None = None
        self._lock = threading.Lock()
        self._exported: dict[str, Path] = {}

    def files(self) -> list[str]:
        if self._files is None:
            out = run_bytes(self.root, "ls-tree", "-r", "--name-only", "-z", self.sha)
            self._files = sorted(n for n in out.decode().split("\0") if n)
        return self._files

    def read(self, path: str) -> str | None:
        if not self.exists(path):
            return None
        with self._lock:
            if self._blobs is None:
                self._blobs = BlobReader(self.root)
            return self._blobs.read(self.sha, path)

    def export(self, paths: list[str], dest: Path) -> Path:
        """`git archive <sha> <paths> | tar -x` once for all ``paths`` not yet exported; returns the base dir."""
        base = dest / self.sha
        with self._lock:
            todo = [p for p in paths if p not in self._exported]
            if todo:
                base.mkdir(parents=True, exist_ok=True)
                data = run_bytes(self.root, "archive", "--format=tar", self.sha, "--", *todo)
                with tarfile.open(fileobj=io.BytesIO(data)) as tar:
                    tar.extractall(base, filter="data")
                for p in todo:
                    self._exported[p] = base / p
        return base

    def tree_id(self, path: str) -> str | None:
        return object_id(self.root, f"{self.sha}:{path.rstrip('/')}")

    def close(self) -> None:
        if self._blobs is not None:
            self._blobs.close()

    def __del__(self) -> None:  # the batch process must not outlive us
        with contextlib.suppress(Exception):  # at interpreter shutdown there is nothing left to report to
            self.close()


def snapshot(root: Path, ref: str | None) -> Snapshot:
    return WorkTree(root) if ref is None else Commit(root, ref)


# -- writing ----------------------------------------------------------------------------------------------------


def ok(root: Path, *args: str) -> bool:
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True).returncode == 0


def head(root: Path) -> str:
    return run(root, "rev-parse", "--verify", "HEAD^{commit}").strip()


def is_ancestor(root: Path, older: str, newer: str) -> bool:
    return ok(root, "merge-base", "--is-ancestor", older, newer)


def dirty_paths(root: Path) -> list[str]:
    """Modified, staged and untracked (not ignored) paths: anything that would make a commit differ from HEAD."""
    out = run(root, "status", "--porcelain=v1", "-z", "--untracked-files=all")
    return [entry[3:] for entry in out.split("\0") if len(entry) > 3]


def require_clean(root: Path, what: str) -> None:
    paths = dirty_paths(root)
    if paths:
        shown = ", ".join(paths[:5]) + (f" and {len(paths) - 5} more" if len(paths) > 5 else "")
        raise GitopsError(
            f"the work tree at {root} has uncommitted changes ({shown}); {what} commits exactly one change on a clean "
            "tree: commit or stash them first"
        )


def show(root: Path, rev: str, path: str) -> str | None:
    """The text of ``path`` at ``rev``, or None when it does not exist there."""
    proc = subprocess.run(["git", "-C", str(root), "show", f"{rev}:{path}"], capture_output=True, text=True)
    return proc.stdout if proc.returncode == 0 else None


def export_tree(root: Path, rev: str, path: str, dest: Path) -> None:
    """The folder ``path`` as at ``rev`` written to ``dest`` (files and modes exactly, so its tree id is the same)."""
    data = subprocess.run(["git", "-C", str(root), "archive", "--format=tar", rev, "--", path], capture_output=True)
    if data.returncode != 0:
        raise GitError(f"`git archive {rev} -- {path}` failed in {root}: {data.stderr.decode().strip()}")
    depth = len(path.strip("/").split("/"))
    with tarfile.open(fileobj=io.BytesIO(data.stdout)) as tar:
        for member in tar.getmembers():
            parts = member.name.split("/")[depth:]
            if not parts:
                continue
            member.name = "/".join(parts)
            tar.extract(member, dest, filter="data")


def log_oneline(root: Path, old: str, new: str, path: str) -> list[str]:
    """`git log --oneline old..new -- path`, newest first."""
    out = run(root, "log", "--oneline", "--no-decorate", f"{old}..{new}", "--", path)
    return [line for line in out.splitlines() if line]


def count_commits(root: Path, old: str, new: str, path: str) -> int:
    return int(run(root, "rev-list", "--count", f"{old}..{new}", "--", path).strip() or 0)


def with_trailers(message: str, trailers: Sequence[tuple[str, str]]) -> str:
    """``message`` with ``trailers`` appended, in order, by `git interpret-trailers`.

    ``--if-exists add`` overrides a user's trailer.ifExists config: two apps promoted at the same chart revision must
    both keep their `Chart-Commit:` line, or the per-app lists in the trailers no longer line up.
    """
    args = ["interpret-trailers", "--if-exists", "add", "--if-missing", "add", "--where", "end"]
    for key, value in trailers:
        args += ["--trailer", f"{key}: {value}"]
    # interpret-trailers needs no repository; run it from a neutral directory so no repo config can interfere.
    neutral = Path(tempfile.gettempdir())
    out = run(neutral, *args, input=message.rstrip("\n") + "\n")
    # A body whose last paragraph looks like `key: value` lines would be taken for the trailer block and merged
    # with ours (and `image: …` read back as an Image trailer). Refuse rather than write an ambiguous record.
    parsed = run(neutral, "interpret-trailers", "--parse", input=out).splitlines()
    expected = [f"{key}: {value}" for key, value in trailers]
    if parsed != expected:
        raise GitopsError(f"commit message body would be read as trailers: {parsed} (expected {expected})")
    return out


@contextlib.contextmanager
def interrupts_as_keyboard_interrupt() -> Iterator[None]:
    """SIGTERM and SIGHUP (a CI runner cancelling a job, a closed terminal) unwind like Ctrl-C, so ``finally`` blocks
    that remove scratch worktrees still run."""

    def handler(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = {}
    for sig in (signal.SIGTERM, signal.SIGHUP):
        # Outside the main thread signals cannot be caught (ValueError): nothing to install, nothing to restore.
        with contextlib.suppress(ValueError):
            previous[sig] = signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


class Scratch:
    """A detached worktree of ``base`` outside the user's tree: the change is written, validated and committed there.

    The user's tree is untouched until `land` fast-forwards it, so a failed validation, an error or an interrupt at
    any point before that leaves it byte-identical (and `close` removes the scratch tree).
    """

    def __init__(self, root: Path, base: str) -> None:
        self.root = root
        self.base = base
        self._parent = Path(tempfile.mkdtemp(prefix="gitops-change-"))
        self.path = self._parent / "tree"
        try:
            run(root, "worktree", "add", "--quiet", "--detach", str(self.path), base)
        except BaseException:  # an interrupt during `worktree add` must not leave a half-made worktree behind
            self.close()
            raise

    def write(self, rel: str, text: str) -> None:
        target = self.path / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)

    def read(self, rel: str) -> str | None:
        try:
            return (self.path / rel).read_text()
        except FileNotFoundError:
            return None

    def put_tree(self, rel: str, tree: str | None) -> None:
        """Make the folder ``rel`` hold exactly the git tree ``tree`` (files, modes, nothing else), staged; ``None``
        removes it. Copying by tree id keeps the copy's own tree id equal to ``tree``, which is what proves it."""
        run(self.path, "rm", "-r", "-q", "--ignore-unmatch", "--", rel)
        shutil.rmtree(self.path / rel, ignore_errors=True)
        if tree is not None:
            run(self.path, "read-tree", f"--prefix={rel.rstrip('/')}/", tree)
            run(self.path, "checkout", "--", rel)

    def commit(self, message: str, paths: Sequence[str]) -> str:
        run(self.path, "add", "-A", "--", *paths)
        # --no-verify: the user's hooks run on their own commits; a release change is checked by `gitops validate`.
        run(self.path, "commit", "--quiet", "--no-verify", "--cleanup=verbatim", "-F", "-", input=message)
        return head(self.path)

    def close(self) -> None:
        # Twice --force: a `worktree add` cut short by an interrupt leaves its worktree locked ("initializing").
        subprocess.run(
            ["git", "-C", str(self.root), "worktree", "remove", "--force", "--force", str(self.path)],
            capture_output=True,
        )
        shutil.rmtree(self._parent, ignore_errors=True)
        subprocess.run(["git", "-C", str(self.root), "worktree", "prune"], capture_output=True)

    def __enter__(self) -> Scratch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def land(root: Path, base: str, commit: str) -> None:
    """Fast-forward the user's checkout from ``base`` to ``commit`` (git updates index, tree and ref together).

    Refuses if HEAD moved or the tree changed while the change was being prepared: we never merge or overwrite.
    The fast-forward itself is a short local operation that is safer finished than cut: it runs in its own session
    (a Ctrl-C in the terminal does not reach it) and our own interrupt signals wait until it is done.
    """
    now = head(root)
    if now != base:
        raise GitopsError(
            f"HEAD moved from {base[:12]} to {now[:12]} while the change was prepared; nothing was changed"
        )
    require_clean(root, "gitops")
    signals = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {}
    for sig in signals:
        with contextlib.suppress(ValueError):
            previous[sig] = signal.signal(sig, signal.SIG_IGN)
    try:
        proc = subprocess.run(
            ["git", "-C", str(root), "merge", "--ff-only", "--quiet", commit],
            capture_output=True,
            text=True,
            start_new_session=True,
        )
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
    if proc.returncode != 0:
        raise GitError(f"fast-forward of {root} to {commit[:12]} failed: {proc.stderr.strip()}")
