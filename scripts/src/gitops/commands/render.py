"""`gitops render`: what Argo CD would apply for an environment, the platform or a cluster."""

from __future__ import annotations

from pathlib import Path

import click

from gitops.commands import repo_root


@click.command("render")
@click.option("--env", help="An environment (a folder of environments/).")
@click.option("--platform", "platform", is_flag=True, help="The platform: platform/ and its upstream charts.")
@click.option("--cluster", help="A cluster's bootstrap: clusters/CLUSTER/ and its upstream charts.")
@click.option("--app", help="With --env: only this app (its folder name under environments/<env>/).")
@click.option(
    "--ref",
    help="Render the repository at this revision. Default: the work tree, standing in for main, where every "
    "environment is read (charts, promoted chart copies, values).",
)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), help="Write one file per Application here.")
@click.pass_context
def render(
    ctx: click.Context,
    env: str | None,
    platform: bool,
    cluster: str | None,
    app: str | None,
    ref: str | None,
    out: Path | None,
) -> None:
    """Render an environment (--env), the platform (--platform) or a cluster (--cluster) as Argo CD would apply it.

    For an environment: the Applications its ApplicationSet generates (first), then each Application's manifests
    from the pinned helm, sorted by kind/namespace/name so two renders diff cleanly. For the platform and a cluster:
    the folder's manifests, then what each of its Applications of an upstream chart applies (the chart pinned in the
    toolchain's versions.toml), or a note naming a chart that cannot be had here.
    """
    from gitops import model as repomodel
    from gitops.render import output, targets
    from gitops.render.helm import workspace

    if [bool(env), platform, bool(cluster)].count(True) != 1:
        raise click.UsageError("name one thing to render: --env ENV, --platform or --cluster NAME")
    if app and not env:
        raise click.UsageError("--app selects an app of an environment: give --env too")
    model = repomodel.load(repo_root(ctx), ref)
    with workspace() as work:
        if env:
            result = targets.environment(model, env, work, only_app=app)
            applications, rendered, problems = result.applications, result.rendered, result.all_problems()
            notes = [f"{x.title}: {n}" for x in rendered for n in x.notes]
            single = None
        else:
            folder = "platform" if platform else f"clusters/{cluster}"
            applications, rendered = [], targets.folder(model, folder, work)
            problems = [p for x in rendered for p in x.problems]
            notes = [n for x in rendered for n in x.notes]
            single = folder.replace("/", "-")
    if out is None:
        click.echo(output.format_applications(applications), nl=False)
        for x in rendered:
            click.echo(output.format_rendered(x), nl=False)
    else:
        written = output.write(out, applications, rendered, single)
        click.echo(f"wrote {written} file(s) to {out}", err=True)
    for note in notes:
        click.echo(f"note: {note}", err=True)
    for p in problems:
        click.echo(f"error: {p}", err=True)
    if problems:
        raise SystemExit(1)
