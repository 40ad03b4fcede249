"""CLI verbs, one module each. Commands parse arguments and print; the logic lives in library modules, and imports
of heavy libraries (kubernetes, helm runs) stay inside the commands so `gitops --help` is instant."""

from __future__ import annotations

from pathlib import Path

import click


def repo_root(ctx: click.Context) -> Path:
    """The repository a verb works on: `gitops --repo PATH`, else the git work tree of the current directory."""
    from gitops.git import toplevel

    repo = (ctx.find_root().obj or {}).get("repo")
    return toplevel(repo or Path.cwd())


def register(main: click.Group) -> None:
    from gitops.commands import (
        bump,
        changed_apps,
        cluster,
        diff,
        docs,
        history,
        new_app,
        promote,
        push,
        render,
        rollback,
        status,
        tools,
        validate,
    )

    for command in (
        tools.tools,
        cluster.cluster,
        render.render,
        validate.validate,
        promote.promote,
        rollback.rollback,
        bump.bump,
        status.status,
        history.history,
        diff.diff,
        changed_apps.changed_apps,
        push.push,
        new_app.new_app,
        docs.docs,
    ):
        main.add_command(command)
