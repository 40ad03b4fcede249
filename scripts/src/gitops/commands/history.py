"""`gitops history`: every release change (promotion, rollback, build, by hand) and every values change, per
environment, from git alone."""

from __future__ import annotations

import json

import click

from gitops.commands import repo_root


@click.command()
@click.option("--env", help="Only changes to this environment.")
@click.option("--app", help="Only changes to this app.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.pass_context
def history(ctx: click.Context, env: str | None, app: str | None, fmt: str) -> None:
    """Who prepared each change, who merged it and when it reached main, what moved from what to what; newest first."""
    from gitops.release import history as lib

    root = repo_root(ctx)
    if (warning := lib.shallow_warning(root)) is not None:
        click.echo(warning, err=True)
    events = lib.events(root, env=env, app=app)
    lib.require_known(root, env, app, events)
    if fmt == "json":
        click.echo(json.dumps([e.to_dict() for e in events], indent=2))
    else:
        click.echo(lib.render_text(events), nl=False)
