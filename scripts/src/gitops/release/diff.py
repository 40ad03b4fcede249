"""`gitops diff`: what a change does to the rendered manifests of each environment, for humans reviewing a PR."""

from __future__ import annotations

from pathlib import Path

from gitops import git
from gitops.errors import GitopsError
from gitops.model import release
from gitops.release import rendered


def environments(root: Path, base: str, head: str) -> list[str]:
    """Every environment at either ref, promotion order first (a PR that adds or removes one shows it too)."""
    names: list[str] = []
    for ref in (head, base):
        out = git.run(root, "ls-tree", "-d", "--name-only", "-z", f"{ref}:environments")
        names += [n for n in out.split("\0") if n and n not in names]
    order = release.layout(root).order
    return [n for n in order if n in names] + sorted(n for n in names if n not in order)


def _title(rel: str, env: str) -> str:
    """`pod-details (Application pod-details-prod)` for `pod-details-prod.yaml`; the Applications' own file too."""
    name = rel.removesuffix(".yaml")
    if name == "applications":
        return f"the Applications of {env} (its ApplicationSet's output)"
    return f"{name.removesuffix(f'-{env}')} (Application {name})"


def text(per_file: list[tuple[str, list[tuple[str, str]]]]) -> str:
    """A heading per environment, and per app under it, before each diff; environments without a change say so."""
    out = []
    for env, files in per_file:
        out.append(f"=== {env}: " + (f"{len(files)} rendered file(s) change\n" if files else "no change\n"))
        for rel, d in files:
            out.append(f"--- {env} / {_title(rel, env)}\n{d}")
    return "".join(out)


def diff(root: Path, base: str, head: str, envs: list[str], fmt: str) -> str:
    for ref in (base, head):
        if git.rev_parse(root, ref) is None:
            raise GitopsError(f"{ref!r} names no commit in this clone (fetch it, e.g. with fetch-depth: 0)")
    names = envs or environments(root, base, head)
    per_file = [(env, rendered.render_diff(root, env, base, head)) for env in names]
    if fmt == "text":
        return text(per_file)
    diffs = [(env, "".join(d for _, d in files)) for env, files in per_file]
    short_base, short_head = git.rev_parse(root, base)[:12], git.rev_parse(root, head)[:12]  # type: ignore[index]
    changed = [env for env, d in diffs if d]
    head_md = (
        "## Rendered manifests\n\n"
        f"`gitops diff {short_base} {short_head}`: "
        + (f"changes in {', '.join(f'`{e}`' for e in changed)}." if changed else "no environment changes.")
        + "\n"
    )
    sections = [(f"### `{env}`", d, f"gitops diff {short_base} {short_head} --env {env}") for env, d in diffs]
    return rendered.fit_sections(head_md, sections)
