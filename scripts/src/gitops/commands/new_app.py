"""`gitops new-app` (a new service, and later its first release in each promotion target) and `gitops docs` (the
files generated from the repository). One module: both write what `gitops.newapp` generates."""

from __future__ import annotations

from pathlib import Path

import click

from gitops.commands.render import REPO_OPTION, repo_root


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
@REPO_OPTION
def new_app(
    name: str, port: int | None, owner: str, description: str | None, env: str | None, repo_path: Path | None
) -> None:
    """Create apps/NAME from the reference app (code, tests, Dockerfile, chart, catalog entry, TechDocs) and its
    folder in the first environment, with the host NAME-<env>.<domain>.

    Later environments run a copy of the chart taken from a commit of main, so NAME reaches them once it is merged:
    `gitops new-app NAME --env prod`. Nothing is committed; a refused or failed run writes nothing.
    """
    from gitops import newapp

    root = repo_root(repo_path)
    if env:
        if port is not None or description is not None or owner != newapp.DEFAULT_OWNER:
            raise click.UsageError(
                "--env adds an existing app to an environment: --port, --owner and --description belong to its creation"
            )
        click.echo(newapp.first_release(root, name, env).text(), nl=False)
    else:
        click.echo(newapp.create(root, name, port=port, owner=owner, description=description).text(), nl=False)


@click.command("docs")
@click.option("--check", is_flag=True, help="Write nothing; exit 1 listing the files that are out of date.")
@REPO_OPTION
def docs(check: bool, repo_path: Path | None) -> None:
    """Regenerate what is derived from the repository: each app's chart README (helm-docs, from values.yaml),
    catalog-info.yaml (Backstage) and mkdocs.yml (TechDocs)."""
    from gitops import newapp

    root = repo_root(repo_path)
    if check:
        stale = newapp.stale_docs(root)
        for g in stale:
            click.echo(f"out of date: {g.path}")
        if stale:
            click.echo("run `gitops docs` to regenerate them", err=True)
            raise SystemExit(1)
        click.echo("generated files are current")
        return
    changed = newapp.write_docs(root)
    for path in changed:
        click.echo(f"wrote {path}")
    if not changed:
        click.echo("generated files are current")


def register(main: click.Group) -> None:
    main.add_command(new_app)
    main.add_command(docs)
