"""`gitops validate`: every check of the repository, every problem reported at once."""

from __future__ import annotations

import json
from pathlib import Path

import click

from gitops.commands import repo_root


@click.command("validate")
@click.argument("files", nargs=-1)
@click.option("--env", "envs", multiple=True, help="Only this environment (repeatable).")
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
    "--no-cache",
    "no_cache",
    is_flag=True,
    help="Render and check everything again, ignoring (and not updating) the results kept in"
    " $GITOPS_VALIDATE_CACHE (default ~/.cache/gitops/validate).",
)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.pass_context
def validate(
    ctx: click.Context,
    files: tuple[str, ...],
    envs: tuple[str, ...],
    live_check: bool,
    kubeconfig: Path | None,
    no_cache: bool,
    fmt: str,
) -> None:
    """Validate the repository: every environment, the platform and the clusters; with --env, those environments;
    with FILES (changed files, as pre-commit passes them), what they can affect.

    Checks, in order: yamllint, values.schema.json and `helm lint --strict` per app and environment, kubeconform
    -strict on everything rendered, the repository's rules, and with --live a server-side dry run. Exits 1 if
    anything is wrong, after reporting everything. Results whose inputs have not changed since an earlier run are
    reused (the same findings, without running helm or kubeconform again) unless --no-cache.
    """
    from gitops.checks import validate as v

    if files and envs:
        raise click.UsageError("give changed FILES or --env, not both")
    root = repo_root(ctx)
    for f in files:
        if not (Path(f).exists() or (root / f).exists()):
            if (root / "environments" / f).is_dir():
                raise click.UsageError(f"{f!r} is an environment, not a file: validate it with --env {f}")
            raise click.UsageError(
                f"{f!r}: no such file (validate takes changed files, relative to the repository or the current"
                " directory; an environment is named with --env)"
            )
    if files:
        report = v.validate(root, changed=list(files), live_check=live_check, kubeconfig=kubeconfig, cache=not no_cache)
    else:
        report = v.validate(root, list(envs), live_check=live_check, kubeconfig=kubeconfig, cache=not no_cache)
    if fmt == "json":
        click.echo(json.dumps(v.format_json(report), indent=2))
    else:
        click.echo(v.format_text(report))
    if not report.ok:
        raise SystemExit(1)
