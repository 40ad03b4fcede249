"""`gitops changed-apps`: the build matrix — apps whose folder changed between two commits."""

from __future__ import annotations

import json
import os

import click

from gitops.commands import repo_root
from gitops.errors import GitopsError


@click.command("changed-apps")
@click.argument("base")
@click.argument("head")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option(
    "--github-output",
    metavar="NAME",
    help="Also append NAME=<json> to the file in $GITHUB_OUTPUT (a job output for a matrix).",
)
@click.pass_context
def changed_apps(ctx: click.Context, base: str, head: str, fmt: str, github_output: str | None) -> None:
    """Apps (with a Dockerfile) changed between BASE and HEAD, with image repository, version and build tag."""
    from gitops.release import changedapps as changes

    root = repo_root(ctx)
    notes: list[str] = []
    apps = changes.changed_apps(root, base, head, notes)
    for note in notes:
        click.echo(f"note: {note}", err=True)
    encoded = json.dumps(apps, separators=(",", ":"))
    if github_output:
        target = os.environ.get("GITHUB_OUTPUT")
        if not target:
            raise GitopsError("--github-output needs $GITHUB_OUTPUT (set by GitHub Actions) to name a file")
        with open(target, "a") as f:
            f.write(f"{github_output}={encoded}\n")
    if fmt == "json":
        click.echo(encoded)
    else:
        for a in apps:
            click.echo(f"{a['app']}  {a['image']}:{a['tag']}  ({a['context']})")
