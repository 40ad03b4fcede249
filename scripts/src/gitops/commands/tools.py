"""`gitops tools`: build and locate the pinned toolchain."""

from __future__ import annotations

import click

from gitops.errors import GitopsError


@click.group()
def tools() -> None:
    """The pinned GitOps toolchain (scripts/src/gitops/toolchain/versions.toml)."""


@tools.command("build")
@click.argument("names", nargs=-1)
@click.option("--force", is_flag=True, help="Rebuild even if cached.")
def build_cmd(names: tuple[str, ...], force: bool) -> None:
    """Build missing tools and fetch missing upstream charts into the cache; print each with its version."""
    from gitops.toolchain import build

    try:
        results, charts = build.build_all(list(names) or None, force=force)
    except build.BuildFailed as e:
        raise GitopsError(str(e)) from None
    for tool, version in results:
        click.echo(f"{tool.name:<24} {tool.version:<10} {version}")
    for chart, digest in charts:
        click.echo(f"{'chart ' + chart.name:<24} {chart.chart_version:<10} {chart.provenance} {digest}")
    if not names:
        from gitops.toolchain import schemas

        root = schemas.generate()
        kinds = sum(1 for _ in root.rglob("*.json"))
        click.echo(f"{'schemas':<24} {schemas.kubernetes_version():<10} {kinds} kinds + CRDs in {root}")


@tools.command("path")
@click.argument("name")
def path_cmd(name: str) -> None:
    """Print the path of a built tool."""
    from gitops.toolchain import ToolMissing, tool_path

    try:
        click.echo(tool_path(name))
    except (ToolMissing, KeyError) as e:
        raise GitopsError(str(e).strip('"')) from None


@tools.command("env")
def env_cmd() -> None:
    """Print a PATH export that puts every pinned tool first."""
    import os

    from gitops.toolchain import bin_dirs

    click.echo("export PATH=" + os.pathsep.join([*map(str, bin_dirs()), "$PATH"]))
