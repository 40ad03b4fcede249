"""`gitops rollback`: a new commit restoring an earlier release (image and chart) of one app; values stay."""

from __future__ import annotations

import click

from gitops.commands import repo_root


@click.command()
@click.option("--env", required=True, help="Environment to roll back (e.g. prod).")
@click.option("--app", required=True, help="App to roll back.")
@click.option("--to", "to", help="A commit that changed the release: restore the release as it was there.")
@click.option("--steps", type=int, help="Go back N promotions from the one in effect (default 1).")
@click.option("--dry-run", is_flag=True, help="Print what would change; write nothing.")
@click.pass_context
def rollback(ctx: click.Context, env: str, app: str, to: str | None, steps: int | None, dry_run: bool) -> None:
    """Restore APP's release in ENV from an earlier promotion, or its first release (history is never rewritten)."""
    from gitops.release import rollback as lib

    root = repo_root(ctx)
    click.echo(lib.rollback(root, env, app, to, steps, dry_run), nl=False)
