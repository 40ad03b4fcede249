"""`gitops push`: push this checkout's release commits, rebasing and retrying when the branch moved."""

from __future__ import annotations

import click

from gitops.commands import repo_root


@click.command()
@click.option("--remote", default="origin", show_default=True)
@click.option("--branch", default="main", show_default=True)
@click.option("--attempts", type=click.IntRange(1, 10), default=3, show_default=True)
@click.pass_context
def push(ctx: click.Context, remote: str, branch: str, attempts: int) -> None:
    """Push HEAD to REMOTE/BRANCH; on a race with another push, rebase onto it and try again."""
    from gitops.release import push as lib

    root = repo_root(ctx)
    click.echo(lib.push(root, remote, branch, attempts), nl=False)
