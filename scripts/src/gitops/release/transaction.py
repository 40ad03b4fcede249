"""One release change, all or nothing: write the new files, validate the result, commit it, and only then move the
user's checkout.

Every verb that edits release pins (promote, rollback, bump) goes through `apply`. The change is built in a scratch
worktree of HEAD outside the user's tree, validated there with `gitops validate`, and committed there; the user's
checkout is fast-forwarded to that commit as the very last step. A refusal, a failed validation, an error or an
interrupt (Ctrl-C, SIGTERM from a cancelled CI job) before that step leaves the user's tree, index and HEAD exactly
as they were.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from gitops import git
from gitops.release import rendered


@dataclass
class Change:
    files: dict[str, str]  # repo-relative path -> new text
    message: str  # subject, body and trailers
    validate_envs: list[str]
    what: str  # "the promotion of dev to prod", for messages
    # repo-relative folder -> the git tree it must hold afterwards (a promoted chart copy), or None to remove it
    trees: dict[str, str | None] = field(default_factory=dict)


def apply(
    root: Path,
    change: Change,
    base: str,
    prepare: Callable[[Path, str, str], None] | None = None,
    *,
    land: bool = True,
) -> str:
    """Commit ``change`` on top of ``base`` (HEAD when the change was planned) and fast-forward to it; the new sha.

    ``prepare(scratch_tree, base, new_sha)`` runs after the commit exists but before the checkout moves: work that
    must succeed for the change to land (rendering the PR body) fails it there, atomically. With ``land=False``
    everything happens but the last step (a dry run that still validates and prepares): the commit is discarded.
    """
    with git.interrupts_as_keyboard_interrupt(), git.Scratch(root, base) as scratch:
        for folder, tree in change.trees.items():
            scratch.put_tree(folder, tree)
        for path, text in change.files.items():
            scratch.write(path, text)
        rendered.validate(scratch.path, change.validate_envs, change.what)
        paths = [*change.files, *(folder for folder, tree in change.trees.items() if tree)]
        sha = scratch.commit(change.message, paths)
        if prepare is not None:
            prepare(scratch.path, base, sha)
        if land:
            git.land(root, base, sha)
    return sha
