"""`gitops status`: apps by environments, what runs where and how far behind each environment is."""

from __future__ import annotations

import json

import click

from gitops.commands import repo_root


@click.command()
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.pass_context
def status(ctx: click.Context, fmt: str) -> None:
    """Per app and environment: the image, the chart, what is pending there, and the last change to it."""
    from gitops import git
    from gitops.release import history
    from gitops.release import status as lib

    root = repo_root(ctx)
    if (warning := history.shallow_warning(root)) is not None:
        click.echo(warning, err=True)
    cells = lib.status(root)
    if fmt == "json":
        click.echo(json.dumps({"head": git.head(root), "cells": [c.to_dict() for c in cells]}, indent=2))
    else:
        click.echo(lib.render_text(cells), nl=False)
