"""`gitops`: the one CLI of this repository. Each verb lives in a module named for what it does."""

from __future__ import annotations

import sys

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
def main() -> None:
    """GitOps monorepo tooling: toolchain, local control plane, render, validate, promote."""


def _register() -> None:
    from gitops.commands import register

    register(main)


_register()
