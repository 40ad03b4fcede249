"""`gitops diff`: the rendered-manifest diff between two git refs (what a PR changes in each environment)."""

from __future__ import annotations

from pathlib import Path

import click

from gitops.commands import repo_root


@click.command()
@click.argument("base")
@click.argument("head")
@click.option("--env", "envs", multiple=True, help="Environment to diff (repeatable; default: every environment).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "markdown"]),
    default="text",
    show_default=True,
    help="markdown: one section per environment, cut to fit a GitHub comment.",
)
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), help="Write here instead of stdout.")
@click.pass_context
def diff(ctx: click.Context, base: str, head: str, envs: tuple[str, ...], fmt: str, output: Path | None) -> None:
    """Render each environment at BASE and at HEAD (`gitops render --env ENV --ref`) and diff the two."""
    from gitops.release import diff as lib

    root = repo_root(ctx)
    text = lib.diff(root, base, head, list(envs), fmt)
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text)
        click.echo(f"wrote {output}")
