"""Git as the record of every release change: clean-tree checks, commits with trailers, and staging a change in a
scratch worktree so the user's tree is only ever moved by a fast-forward.

`gitops.git` reads the repository (snapshots at a ref); this module writes to it. Plain ``git`` subprocesses: every
command used here exists in git 2.39 (Debian 12), the oldest git we support.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import signal
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from gitops.errors import GitopsError

SHA_RE = re.compile(r"^[0-9a-f]{40}$")
# Record/field/list separators for `git log --format`: control characters no commit message or trailer contains.
RS, FS, LS = "\x1e", "\x1f", "\x1d"


class GitCommandError(GitopsError):
    pass


def run(root: Path, *args: str, input: str | None = None, env: dict[str, str] | None = None) -> str:
    """Run git in ``root``; its stdout, or GitCommandError naming the command and git's own message."""
    proc = subprocess.run(
        ["git", "-C", str(root), *args],
        input=input,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
    )
    if proc.returncode != 0:
        raise GitCommandError(f"`git {' '.join(args)}` failed in {root}: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout


def ok(root: Path, *args: str) -> bool:
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True).returncode == 0


def toplevel(path: Path) -> Path:
    """The root of the work tree holding ``path``; a clear error outside a repository."""
    proc = subprocess.run(["git", "-C", str(path), "rev-parse", "--show-toplevel"], capture_output=True, text=True)
    if proc.returncode != 0:
        raise GitopsError(f"{path} is not inside a git repository (gitops works on a clone of the monorepo)")
    return Path(proc.stdout.strip())


def head(root: Path) -> str:
    return run(root, "rev-parse", "--verify", "HEAD^{commit}").strip()


def rev_parse(root: Path, rev: str) -> str | None:
    """The commit ``rev`` names, or None."""
    proc = subprocess.run(
        ["git", "-C", str(root), "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"],
        capture_output=True,
        text=True,
    )
    return proc.stdout.strip() if proc.returncode == 0 else None


def is_ancestor(root: Path, older: str, newer: str) -> bool:
    return ok(root, "merge-base", "--is-ancestor", older, newer)


def is_shallow(root: Path) -> bool:
    return run(root, "rev-parse", "--is-shallow-repository").strip() == "true"


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


def tree_id(root: Path, rev: str, path: str) -> str | None:
    """The tree (or blob) id of ``path`` at ``rev``: equal ids mean identical content, whatever the history."""
    return rev_parse_object(root, f"{rev}:{path}")


def rev_parse_object(root: Path, spec: str) -> str | None:
    proc = subprocess.run(
        ["git", "-C", str(root), "rev-parse", "--verify", "--quiet", spec], capture_output=True, text=True
    )
    return proc.stdout.strip() if proc.returncode == 0 else None


def export_tree(root: Path, rev: str, path: str, dest: Path) -> None:
    """The folder ``path`` as at ``rev`` written to ``dest`` (files and modes exactly, so its tree id is the same)."""
    data = subprocess.run(["git", "-C", str(root), "archive", "--format=tar", rev, "--", path], capture_output=True)
    if data.returncode != 0:
        raise GitCommandError(f"`git archive {rev} -- {path}` failed in {root}: {data.stderr.decode().strip()}")
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
        raise GitCommandError(f"fast-forward of {root} to {commit[:12]} failed: {proc.stderr.strip()}")
