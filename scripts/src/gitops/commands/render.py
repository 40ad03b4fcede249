"""`gitops render`: what Argo CD would apply for an environment, the platform or a cluster."""

from __future__ import annotations

from pathlib import Path

import click

from gitops.errors import GitopsError

REPO_OPTION = click.option(
    "--repo",
    "repo_path",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Repository to read (default: the git work tree containing the current directory).",
)


def repo_root(repo_path: Path | None) -> Path:
    from gitops.git import toplevel

    return toplevel(repo_path or Path.cwd())


@click.command("render")
@click.argument("target")
@click.argument("cluster_name", required=False)
@click.option("--app", help="Only this app (its folder name under environments/<env>/).")
@click.option(
    "--ref",
    help="Render the repository at this revision. Default: the work tree, standing in for main, where every "
    "environment is read (charts, promoted chart copies, values).",
)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), help="Write one file per Application here.")
@REPO_OPTION
def render(
    target: str, cluster_name: str | None, app: str | None, ref: str | None, out: Path | None, repo_path: Path | None
) -> None:
    """Render TARGET as Argo CD would apply it: an environment (e.g. `dev`), `platform`, or `cluster NAME`.

    For an environment: the Applications its ApplicationSet generates (first), then each Application's manifests
    from the pinned helm, sorted by kind/namespace/name so two renders diff cleanly. For `platform` and a cluster:
    the folder's manifests, then what each of its Applications of an upstream chart applies (the chart pinned in the
    toolchain's versions.toml), or a note naming a chart that cannot be had here.
    """
    from gitops import render as r
    from gitops import repo as repomodel

    root = repo_root(repo_path)
    model = repomodel.load(root, ref)
    if target == "cluster":
        if not cluster_name:
            raise GitopsError("`gitops render cluster` needs a cluster name (a folder under clusters/)")
        folder = f"clusters/{cluster_name}"
    elif target == "platform":
        folder = "platform"
    else:
        folder = ""
        if cluster_name:
            raise GitopsError(f"unexpected argument {cluster_name!r}: only `gitops render cluster NAME` takes two")
    if folder:
        if not model.snapshot.is_dir(folder):
            raise GitopsError(f"{folder}/ does not exist ({model.snapshot.label})")
        from gitops import platform_apps

        rendered = r.render_plain(model, folder)
        with r.workspace() as work:
            charts = platform_apps.render_platform(r.Renderer(model, work), [rendered])
        _emit([], [rendered, *charts], out, single=folder.replace("/", "-"))
        _report(rendered.notes + platform_apps.notes(charts), [p for x in (rendered, *charts) for p in x.problems])
        return

    env = model.environments.get(target)
    if env is None:
        known = ", ".join([*model.environments, "platform", "cluster NAME"])
        raise GitopsError(f"no environment {target!r} (environments/{target}/); known: {known}")
    with r.workspace() as work:
        renderer = r.Renderer(model, work)
        (result,) = renderer.render_envs([env], only_app=app)
        if app and not result.applications:
            raise GitopsError(f"{env.appset_file} generates no Application for app {app!r} in {target}")
        _emit(result.applications, result.rendered, out)
        notes = [f"{x.title}: {n}" for x in result.rendered for n in x.notes]
        _report(notes, result.all_problems())


def _emit(applications, rendered, out: Path | None, single: str | None = None) -> None:
    from gitops import render as r

    if out is None:
        click.echo(r.format_applications(applications), nl=False)
        for x in rendered:
            click.echo(r.format_rendered(x), nl=False)
        return
    out.mkdir(parents=True, exist_ok=True)
    if applications:
        (out / "applications.yaml").write_text(r.format_applications(applications))
    for n, x in enumerate(rendered):  # ``single`` names the folder's own manifests, the first
        (out / f"{single if single and n == 0 else x.title}.yaml").write_text(r.format_rendered(x))
    click.echo(f"wrote {len(rendered) + bool(applications)} file(s) to {out}", err=True)


def _report(notes, problems) -> None:
    for note in notes:
        click.echo(f"note: {note}", err=True)
    for p in problems:
        click.echo(f"error: {p}", err=True)
    if problems:
        raise SystemExit(1)
