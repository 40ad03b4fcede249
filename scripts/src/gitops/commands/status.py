"""`gitops status`: apps by environments, what runs where and how far behind each environment is."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.command()
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def status(fmt: str) -> None:
    """Image, chart revision, lag behind the previous environment, and the last release change of each app."""
    from gitops import gitutil
    from gitops import status as lib

    root = gitutil.toplevel(Path.cwd())
    cells = lib.status(root)
    if fmt == "json":
        click.echo(json.dumps({"head": gitutil.head(root), "cells": [c.to_dict() for c in cells]}, indent=2))
    else:
        click.echo(lib.render_text(cells), nl=False)
