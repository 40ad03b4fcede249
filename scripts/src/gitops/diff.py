"""`gitops diff`: what a change does to the rendered manifests of each environment, for humans reviewing a PR."""

from __future__ import annotations

from pathlib import Path

from gitops import gitutil, release, rendered
from gitops.errors import GitopsError


def environments(root: Path, base: str, head: str) -> list[str]:
    """Every environment at either ref, promotion order first (a PR that adds or removes one shows it too)."""
    names: list[str] = []
    for ref in (head, base):
        out = gitutil.run(root, "ls-tree", "-d", "--name-only", "-z", f"{ref}:environments")
        names += [n for n in out.split("\0") if n and n not in names]
    order = release.layout(root).order
    return [n for n in order if n in names] + sorted(n for n in names if n not in order)


def diff(root: Path, base: str, head: str, envs: list[str], fmt: str) -> str:
    for ref in (base, head):
        if gitutil.rev_parse(root, ref) is None:
            raise GitopsError(f"{ref!r} names no commit in this clone (fetch it, e.g. with fetch-depth: 0)")
    names = envs or environments(root, base, head)
    diffs = [(env, rendered.render_diff(root, env, base, head)) for env in names]
    if fmt == "text":
        return "".join(d for _, d in diffs)
    short_base, short_head = gitutil.rev_parse(root, base)[:12], gitutil.rev_parse(root, head)[:12]  # type: ignore[index]
    changed = [env for env, d in diffs if d]
    head_md = (
        "## Rendered manifests\n\n"
        f"`gitops diff {short_base} {short_head}`: "
        + (f"changes in {', '.join(f'`{e}`' for e in changed)}." if changed else "no environment changes.")
        + "\n"
    )
    sections = [(f"### `{env}`", d, f"gitops diff {short_base} {short_head} --env {env}") for env, d in diffs]
    return rendered.fit_sections(head_md, sections)
