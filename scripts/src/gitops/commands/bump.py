"""`gitops bump`: commit a freshly built image to the first environment (what the build workflow calls)."""

from __future__ import annotations

import click

from gitops.commands import repo_root


@click.command()
@click.option("--env", required=True, help="Environment to bump (dev; promotion targets are refused).")
@click.option("--app", required=True, help="App whose image was built.")
@click.option("--image", required=True, help="REPOSITORY:TAG of the pushed image.")
@click.option("--digest", help="sha256:<64 hex> of the pushed image (pins it; recommended).")
@click.option("--source-commit", help="The app commit the image was built from (default: HEAD).")
@click.pass_context
def bump(ctx: click.Context, env: str, app: str, image: str, digest: str | None, source_commit: str | None) -> None:
    """Write IMAGE (and digest) into environments/ENV/APP/release.yaml, validate, and commit with trailers."""
    from gitops.release import bump as lib

    root = repo_root(ctx)
    click.echo(lib.bump(root, env, app, image, digest or None, source_commit or None), nl=False)
