"""`gitops docs`: regenerate what is derived from the repository (chart READMEs, catalog entries, TechDocs)."""

from __future__ import annotations

import click

from gitops.commands import repo_root


@click.command("docs")
@click.option("--check", is_flag=True, help="Write nothing; exit 1 listing the files that are out of date.")
@click.pass_context
def docs(ctx: click.Context, check: bool) -> None:
    """Regenerate what is derived from the repository: each app's chart README (helm-docs, from values.yaml),
    catalog-info.yaml (Backstage) and mkdocs.yml (TechDocs)."""
    from gitops.scaffold import catalog

    root = repo_root(ctx)
    if check:
        stale = catalog.stale_docs(root)
        for g in stale:
            click.echo(f"out of date: {g.path}")
        if stale:
            click.echo("run `gitops docs` to regenerate them", err=True)
            raise SystemExit(1)
        click.echo("generated files are current")
        return
    changed = catalog.write_docs(root)
    for path in changed:
        click.echo(f"wrote {path}")
    if not changed:
        click.echo("generated files are current")
