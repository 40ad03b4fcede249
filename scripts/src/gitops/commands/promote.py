"""`gitops promote`: one commit that moves the source environment's release pins to the next environment."""

from __future__ import annotations

from pathlib import Path

import click

from gitops.commands import repo_root


@click.command()
@click.option("--from", "source", required=True, help="Environment to promote from (e.g. dev).")
@click.option("--to", "target", required=True, help="The next environment in environments/promotion.yaml.")
@click.option(
    "--app",
    "apps",
    multiple=True,
    help="App to promote (repeatable; default: every app). An empty value means every app, so a workflow can pass "
    "an optional input straight through.",
)
@click.option(
    "--pr-body",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the PR description here (also with --dry-run): what moves, the chart's diff, the rendered diff.",
)
@click.option(
    "--diff-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the complete rendered diff of the target here (the PR body may have to cut it).",
)
@click.option(
    "--source-commit",
    help="Promote the source as it was at this commit of HEAD's history (e.g. the revision Argo CD reported healthy); "
    "default: HEAD. Empty means HEAD.",
)
@click.option(
    "--github-event",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Take --app and --source-commit from the GitHub Actions event that started the workflow "
    "($GITHUB_EVENT_PATH): Argo CD's repository_dispatch `<from>-healthy` (its app, at the revision it reported "
    "healthy, refused unless that revision pins the image it reported) or a workflow_dispatch (inputs.app).",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Build and validate the promotion, print it, commit nothing (only --pr-body and --diff-file are written).",
)
@click.pass_context
def promote(
    ctx: click.Context,
    source: str,
    target: str,
    apps: tuple[str, ...],
    pr_body: Path | None,
    diff_file: Path | None,
    source_commit: str | None,
    github_event: Path | None,
    dry_run: bool,
) -> None:
    """Promote releases (image, chart) from --from to --to; values are never promoted."""
    from gitops.release import promote as lib

    root = repo_root(ctx)
    names = sorted({a.strip() for a in apps if a.strip()})
    if github_event is not None:
        from gitops.release import workflow_event

        if names or source_commit:
            raise click.UsageError("--github-event names the app and the source commit: give it alone")
        request = workflow_event.read(github_event, source)
        workflow_event.check_reported_image(root, source, request)
        names, source_commit = request.apps, request.source_commit
    out = lib.promote(root, source, target, names, pr_body, dry_run, source_commit or None, diff_file=diff_file)
    click.echo(out, nl=False)
