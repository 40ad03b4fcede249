"""A scaffold written all or nothing: new directories built aside and renamed into place, edits swapped in, and
every path put back as it was when anything fails or is interrupted."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from gitops import git
from gitops.errors import GitopsError


class Transaction:
    """New directories built in a staging area inside the repository, then renamed into place; edits to existing files
    swapped in with os.replace. Anything that fails, or an interrupt, before the end puts every path back as it was
    and removes the staging area: a refused or failed run leaves nothing behind."""

    def __init__(self, root: Path) -> None:
        self.root = root
        # Inside the repository, so every rename into place stays on one filesystem and is atomic.
        self.staging = Path(tempfile.mkdtemp(prefix=".gitops-new-app-", dir=root))
        self._dirs: list[str] = []  # repo-relative directories to create
        self._edits: dict[str, str] = {}  # repo-relative existing file -> new text

    def stage(self, rel: str) -> Path:
        """Where to build the new directory ``rel``; it is moved to ``root/rel`` on commit."""
        self._dirs.append(rel)
        path = self.staging / rel
        path.mkdir(parents=True)
        return path

    def edit(self, rel: str, text: str) -> None:
        self._edits[rel] = text

    def commit(self) -> tuple[list[str], list[str]]:
        moved: list[str] = []
        replaced: list[tuple[str, str | None]] = []
        try:
            for rel in self._dirs:
                target = self.root / rel
                if target.exists():
                    raise GitopsError(f"{rel} appeared while the app was being prepared; nothing was written")
                target.parent.mkdir(parents=True, exist_ok=True)
                os.rename(self.staging / rel, target)
                moved.append(rel)
            for rel, text in self._edits.items():
                target = self.root / rel
                original = target.read_text() if target.exists() else None
                staged = self.staging / "edits" / rel
                staged.parent.mkdir(parents=True, exist_ok=True)
                staged.write_text(text)
                os.replace(staged, target)
                replaced.append((rel, original))
        except BaseException:
            for rel in reversed(moved):
                shutil.rmtree(self.root / rel, ignore_errors=True)
            for rel, original in reversed(replaced):
                if original is None:
                    (self.root / rel).unlink(missing_ok=True)
                else:
                    (self.root / rel).write_text(original)
            raise
        return moved, list(self._edits)

    def close(self) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)


@contextlib.contextmanager
def transaction(root: Path) -> Iterator[Transaction]:
    with git.interrupts_as_keyboard_interrupt():
        tx = Transaction(root)
        try:
            yield tx
        finally:
            tx.close()
