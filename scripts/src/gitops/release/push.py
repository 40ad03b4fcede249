"""`gitops push`: publish the release commits made by this checkout, surviving a race with other pushes.

The build workflow bumps dev for each app in parallel while people merge PRs; a plain `git push` loses such a race.
On a rejected push this rebases the local commits onto the new remote head and tries again. Each bump touches one
app's release.yaml only, so the rebase is clean unless the same file was changed; then it stops with an error and
leaves the checkout as it was before the rebase.
"""

from __future__ import annotations

import time
from pathlib import Path

from gitops import git
from gitops.errors import GitopsError


def push(root: Path, remote: str, branch: str, attempts: int) -> str:
    git.require_clean(root, "push")
    for attempt in range(1, attempts + 1):
        proc = git.attempt(root, "push", "--porcelain", remote, f"HEAD:refs/heads/{branch}")
        if proc.returncode == 0:
            return f"pushed {git.head(root)[:12]} to {remote}/{branch}\n"
        output = proc.stdout + proc.stderr
        if "[rejected]" not in output and "fetch first" not in output and "non-fast-forward" not in output:
            raise GitopsError(f"`git push {remote} HEAD:{branch}` failed: {output.strip()}")
        if attempt == attempts:
            break
        git.run(root, "fetch", "--quiet", remote, branch)
        rebase = git.attempt(root, "rebase", "--quiet", "FETCH_HEAD")
        if rebase.returncode != 0:
            git.attempt(root, "rebase", "--abort")
            raise GitopsError(
                f"{remote}/{branch} moved and the local commits do not rebase cleanly onto it "
                f"(the same release.yaml changed?): {rebase.stderr.strip()}"
            )
        time.sleep(attempt)  # spread retries of parallel jobs apart
    raise GitopsError(f"{remote}/{branch} kept moving: push rejected {attempts} times")
