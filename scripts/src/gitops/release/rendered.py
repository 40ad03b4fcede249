"""Rendered manifests as seen from a release change: validate the tree a change was built in, render an
environment at a ref, diff two renders (and the objects a change stops rendering), and fit a diff into a GitHub
comment or PR body. Rendering and validation are `gitops.render` and `gitops.checks`, called on the tree at hand."""

from __future__ import annotations

import difflib
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

from gitops import git
from gitops.errors import GitopsError

# GitHub rejects a PR body or comment longer than 65,536 characters; keep a margin for the notes we add.
GITHUB_LIMIT = 65_536
MARGIN = 512


def validate(root: Path, envs: list[str], what: str) -> None:
    """`gitops validate --env ENV…` (static) on the tree at ``root``; GitopsError with its findings when it fails."""
    from gitops.checks import validate as checks

    report = checks.validate(root, envs)
    if not report.ok:
        command = " ".join(["gitops validate", *(f"--env {e}" for e in envs)])
        raise GitopsError(f"{what} fails `{command}`; nothing was written or committed:\n{checks.format_text(report)}")


def env_exists(root: Path, ref: str, env: str) -> bool:
    return git.tree_id(root, ref, f"environments/{env}") is not None


def render(root: Path, env: str, ref: str, out: Path) -> Path:
    """`gitops render --env ENV --out OUT` in a checkout of ``ref``; an environment absent at ``ref`` renders as
    nothing.

    Rendered from a checkout rather than with ``--ref``: the renderer's provenance comments name the ref a
    branch-following source was read at, so two ``--ref`` renders differ on every such line even when no manifest
    does. From a checkout they say "work tree" on both sides, and a diff shows only real changes.
    """
    out.mkdir(parents=True, exist_ok=True)
    if not env_exists(root, ref, env):
        return out
    with git.Scratch(root, ref) as checkout:
        return render_tree(checkout.path, env, out, label=ref)


def render_tree(tree: Path, env: str, out: Path, label: str = "the work tree") -> Path:
    """`gitops render --env ENV --out OUT` of the files in ``tree`` as they are."""
    from gitops import model
    from gitops.render import output, targets
    from gitops.render.helm import workspace

    with workspace() as work:
        result = targets.environment(model.load(tree), env, work)
        problems = result.all_problems()
        if problems:
            listed = "\n".join(f"  {p}" for p in problems)
            raise GitopsError(f"`gitops render --env {env}` at {label} failed:\n{listed}")
        output.write(out, result.applications, result.rendered)
    return out


def _files(base: Path) -> dict[str, Path]:
    return {p.relative_to(base).as_posix(): p for p in sorted(base.rglob("*")) if p.is_file()}


def unified(old: str, new: str, fromfile: str, tofile: str) -> str:
    """A unified diff of two texts in git's form, including its marker for a last line without a newline."""
    lines = difflib.unified_diff(
        old.splitlines(keepends=True), new.splitlines(keepends=True), fromfile=fromfile, tofile=tofile
    )
    return "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines)


def diff_files(before: Path, after: Path, clean: Callable[[str], str] | None = None) -> list[tuple[str, str]]:
    """(file, unified diff) of two render directories, per changed file in path order (stable, so re-runs compare
    clean); with ``clean``, of the files as that function returns them."""
    a, b = _files(before), _files(after)
    keep = clean or (lambda text: text)
    out: list[tuple[str, str]] = []
    for rel in sorted(a.keys() | b.keys()):
        old = keep(a[rel].read_text()) if rel in a else ""
        new = keep(b[rel].read_text()) if rel in b else ""
        if old != new:
            names = (f"a/{rel}" if rel in a else "/dev/null", f"b/{rel}" if rel in b else "/dev/null")
            out.append((rel, unified(old, new, *names)))
    return out


def diff_dirs(before: Path, after: Path, clean: Callable[[str], str] | None = None) -> str:
    """The unified diff of two render directories, file after file."""
    return "".join(d for _, d in diff_files(before, after, clean))


def render_diff(root: Path, env: str, base: str, head: str) -> list[tuple[str, str]]:
    """The rendered-manifest diff of ``env`` between two refs, per rendered file (one per Application, and
    ``applications.yaml`` for the Applications themselves); [] when identical."""
    with tempfile.TemporaryDirectory(prefix=f"gitops-diff-{env}-") as tmp:
        before = render(root, env, base, Path(tmp) / "before")
        after = render(root, env, head, Path(tmp) / "after")
        return diff_files(before, after)


@dataclass
class TreeDiff:
    whole: str  # the rendered-manifest diff
    review: str  # the same, of the renders as ``clean`` returned them
    removed: list[str]  # objects Argo CD applied before and no longer renders: `Kind namespace/name (Application)`


def tree_diff(tree: Path, env: str, base: str, clean: Callable[[str], str] | None = None) -> TreeDiff:
    """What the files of the checkout ``tree`` change in ``env``'s render, from ``base``."""
    with tempfile.TemporaryDirectory(prefix=f"gitops-diff-{env}-") as tmp:
        before = render(tree, env, base, Path(tmp) / "before")
        after = render_tree(tree, env, Path(tmp) / "after")
        whole = diff_dirs(before, after)
        gone = sorted(applied_objects(before).keys() - applied_objects(after).keys())
        return TreeDiff(whole, diff_dirs(before, after, clean) if clean else whole, gone)


def applied_objects(render_dir: Path) -> dict[str, str]:
    """`Kind namespace/name (Application)` of every object a render directory holds that Argo CD applies (Helm
    hooks it has no phase for, such as `helm test` pods, are left out: it never applies them). An object without a
    namespace is in its Application's destination namespace: an app's project allows namespaced kinds only."""
    from gitops.render.helm import Document

    destinations = {}
    if (render_dir / "applications.yaml").is_file():
        for app in yaml.safe_load_all((render_dir / "applications.yaml").read_text()):
            if isinstance(app, dict):
                spec = app.get("spec") or {}
                destinations[app["metadata"]["name"]] = (spec.get("destination") or {}).get("namespace") or ""
    out = {}
    for path in sorted(render_dir.glob("*.yaml")):
        if path.name == "applications.yaml":
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            if not isinstance(doc, dict) or not doc.get("kind"):
                continue
            d = Document("", doc, "")
            if d.never_applied:
                continue
            namespace = d.namespace or destinations.get(path.stem, "")
            where = f"{namespace}/{d.name}" if namespace else d.name
            out[f"{d.kind} {where} ({path.stem})"] = path.stem
    return out


def prunes(root: Path, env: str) -> bool:
    """Whether the environment's Applications prune automatically (its ApplicationSet's template says)."""
    text = (root / "environments" / env / "applicationset.yaml").read_text()
    for doc in yaml.safe_load_all(text):
        if isinstance(doc, dict) and doc.get("kind") == "ApplicationSet":
            policy = (((doc.get("spec") or {}).get("template") or {}).get("spec") or {}).get("syncPolicy") or {}
            return bool((policy.get("automated") or {}).get("prune"))
    return False


def pruning_note(root: Path, env: str, removed: list[str], *, markdown: bool = False) -> list[str]:
    """Objects the change stops rendering: an environment that never prunes by itself keeps them until someone syncs
    with prune, and Argo CD shows the Application OutOfSync meanwhile. Lines for a PR body, or for a terminal."""
    if not removed or prunes(root, env):
        return []
    say = (
        f"after the merge {env} no longer renders {len(removed)} object(s) it runs, and {env} never deletes a live "
        "object by itself: its Application shows them as requiring pruning (OutOfSync) until someone syncs it with "
        "prune"
    )
    if markdown:
        return [f"**Needs a sync with prune:** {say}:", "", *(f"- `{o}`" for o in removed), ""]
    return [f"needs a sync with prune: {say}:", *(f"  - {o}" for o in removed)]


def fenced(diff: str, budget: int, rerun: str) -> str:
    """``diff`` in a ```diff block of at most ``budget`` characters; when cut, whole lines are kept and a note says
    how much was left out and which command prints all of it."""
    fence_open, fence_close = "```diff\n", "```\n"
    whole = fence_open + diff + ("" if diff.endswith("\n") else "\n") + fence_close
    if len(whole) <= budget:
        return whole
    lines = diff.splitlines(keepends=True)
    note_room = 300
    room = max(0, budget - len(fence_open) - len(fence_close) - note_room)
    kept: list[str] = []
    used = 0
    for line in lines:
        if used + len(line) > room:
            break
        kept.append(line)
        used += len(line)
    cut = len(lines) - len(kept)
    note = (
        f"\n> **Diff cut to fit GitHub's {GITHUB_LIMIT:,}-character limit:** {cut:,} of {len(lines):,} lines "
        f"({len(diff) - used:,} characters) are not shown. Run `{rerun}` for the whole diff.\n"
    )
    return fence_open + "".join(kept) + fence_close + note


def fit_sections(head: str, sections: list[tuple[str, str, str]], limit: int = GITHUB_LIMIT) -> str:
    """``head`` then, per (title, diff, rerun command), a heading and the fenced diff, sharing what room is left
    fairly: each section gets an equal share of the remainder, and what one does not use passes to the next."""
    out = [head]
    remaining = limit - MARGIN - len(head)
    for i, (title, diff, rerun) in enumerate(sections):
        heading = f"\n{title}\n\n"
        share = max(0, remaining // (len(sections) - i) - len(heading))
        body = fenced(diff, share, rerun) if diff else "No change in the rendered manifests.\n"
        out.append(heading + body)
        remaining -= len(heading) + len(body)
    text = "".join(out)
    if len(text) > limit:  # only when the head alone is near the limit: never hand GitHub a body it rejects
        note = "\n\n> **Cut to fit GitHub's limit.**\n"
        text = text[: limit - len(note)] + note
    return text
