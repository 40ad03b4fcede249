"""`gitops validate`: every check of the repository, every problem reported at once."""

from __future__ import annotations

import json
from pathlib import Path

import click

from gitops.commands.render import REPO_OPTION, repo_root


@click.command("validate")
@click.argument("args", nargs=-1)
@click.option(
    "--live",
    "live_check",
    is_flag=True,
    help="Also dry-run everything through a real API server with the platform's policies.",
)
@click.option(
    "--kubeconfig",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="With --live: use this cluster instead of starting a local control plane.",
)
@click.option(
    "--changed",
    is_flag=True,
    help="ARGS are changed files (as pre-commit passes them): validate only the environments they can affect.",
)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@REPO_OPTION
def validate(
    args: tuple[str, ...], live_check: bool, kubeconfig: Path | None, changed: bool, fmt: str, repo_path: Path | None
) -> None:
    """Validate ENV… (default: every environment, the platform and the clusters).

    Checks, in order: yamllint, values.schema.json and `helm lint --strict` per app and environment, kubeconform
    -strict on everything rendered, the repository's rules, and with --live a server-side dry run. Exits 1 if
    anything is wrong, after reporting everything.
    """
    from gitops import validate as v

    root = repo_root(repo_path)
    if changed:
        report = v.validate(root, changed=list(args), live_check=live_check, kubeconfig=kubeconfig)
    else:
        report = v.validate(root, list(args), live_check=live_check, kubeconfig=kubeconfig)
    if fmt == "json":
        click.echo(json.dumps(v.format_json(report), indent=2))
    else:
        click.echo(v.format_text(report))
    if not report.ok:
        raise SystemExit(1)
