"""`gitops history`: every promotion, rollback and build bump, from commit trailers alone."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.command()
@click.option("--env", help="Only changes to this environment.")
@click.option("--app", help="Only changes to this app.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def history(env: str | None, app: str | None, fmt: str) -> None:
    """When, who, what moved from what to what, and the commit; newest first."""
    from gitops import gitutil
    from gitops import history as lib

    root = gitutil.toplevel(Path.cwd())
    events = lib.events(root, env=env, app=app)
    if fmt == "json":
        click.echo(json.dumps([e.to_dict() for e in events], indent=2))
    else:
        click.echo(lib.render_text(events), nl=False)
