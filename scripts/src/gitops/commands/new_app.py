"""`gitops new-app`: a new service, and later its first release in each promotion target."""

from __future__ import annotations

import click

from gitops.commands import repo_root


@click.command("new-app")
@click.argument("name")
@click.option(
    "--port",
    type=int,
    help="Port the server listens on in the container (default: the reference app's, from its chart).",
)
@click.option("--owner", default="platform-team", show_default=True, help="Backstage owner (a team or group ref).")
@click.option("--description", help="One line saying what the service does (default: the reference app's).")
@click.option(
    "--env",
    "env",
    help="Instead of creating NAME: write its folder in ENV, a later environment of the promotion order — its overlay, "
    "the image the environment before it runs, and the chart copied from HEAD with its provenance.",
)
@click.pass_context
def new_app(
    ctx: click.Context, name: str, port: int | None, owner: str, description: str | None, env: str | None
) -> None:
    """Create apps/NAME from the reference app (code, tests, Dockerfile, chart, catalog entry, TechDocs) and its
    folder in the first environment, with the host NAME-<env>.<domain>.

    Later environments run a copy of the chart taken from a commit of main, so NAME reaches them once it is merged:
    `gitops new-app NAME --env prod`. Nothing is committed; a refused or failed run writes nothing.
    """
    from gitops.scaffold import newapp, reference

    root = repo_root(ctx)
    if env:
        if port is not None or description is not None or owner != reference.DEFAULT_OWNER:
            raise click.UsageError(
                "--env adds an existing app to an environment: --port, --owner and --description belong to its creation"
            )
        click.echo(newapp.first_release(root, name, env).text(), nl=False)
    else:
        click.echo(newapp.create(root, name, port=port, owner=owner, description=description).text(), nl=False)
