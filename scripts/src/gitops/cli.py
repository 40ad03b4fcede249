"""`gitops`: the one CLI of this repository. Each verb lives in a module named for what it does."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from gitops.errors import GitopsError


class Group(click.Group):
    """Turns the repo's own errors into one clear message and exit code 1, never a traceback."""

    def invoke(self, ctx: click.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except GitopsError as e:
            click.echo(f"error: {e}", err=True)
            sys.exit(e.exit_code)


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--repo",
    "repo_path",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="The clone of the monorepo to work on (default: the git work tree containing the current directory).",
)
@click.pass_context
def main(ctx: click.Context, repo_path: Path | None) -> None:
    """GitOps monorepo tooling: render, validate, promote, roll back, audit; new apps; the pinned toolchain."""
    ctx.obj = {"repo": repo_path}


def _register() -> None:
    from gitops.commands import register

    register(main)


_register()
