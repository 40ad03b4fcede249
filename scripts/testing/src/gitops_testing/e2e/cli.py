"""`gitops-e2e` (`make e2e`): the GitOps loop with the real Argo CD on local control planes (see gitops_testing.e2e)."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("gitops-e2e", context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--repo",
    "repo_path",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Repository to test (default: the git work tree containing the current directory). Its HEAD is tested.",
)
@click.option(
    "--work-tree",
    "include_work_tree",
    is_flag=True,
    help="Also test the uncommitted files of the work tree (committed on top of HEAD in the temporary clone).",
)
@click.option(
    "--timeout",
    default=240.0,
    show_default=True,
    help="Seconds each step may take to converge (the bootstrap: twice that).",
)
@click.option("--keep", is_flag=True, help="Keep the temporary directory (logs, git repos, renders) after the run.")
def main(repo_path: Path | None, include_work_tree: bool, timeout: float, keep: bool) -> None:
    """Run the whole loop: clusters from clusters/, Argo CD, bump → dev, chart change, promote, rollback, projects.

    Needs the pinned toolchain (`make tools`) and redis-server. Leaves no processes or files behind.
    """
    from gitops.errors import GitopsError
    from gitops.git import toplevel
    from gitops_testing import e2e as lib

    try:
        root = toplevel(repo_path or Path.cwd())
        timings = lib.run(root, say=click.echo, include_work_tree=include_work_tree, timeout=timeout, keep=keep)
    except GitopsError as e:
        click.echo(f"error: {e}", err=True)
        raise SystemExit(e.exit_code) from None
    click.echo("timings:")
    click.echo(timings.table())
    click.echo("e2e passed")
