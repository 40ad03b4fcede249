"""`gitops rollback`: a new commit that puts back an earlier release of one app in one environment — its image and
its chart copy — and nothing else: the environment's values.yaml stays as it is on main. History is never rewritten:
the rollback is itself a release change, reviewed and recorded like a promotion.

What can be restored: the release of any earlier promotion, and the environment's first recorded release (the one it
ran before its first promotion); ``--to`` takes any commit that changed the release. Which promotion is "in effect"
is found by content, not by position: the newest candidate whose release equals the current one. So after rolling
back from P3 to P2, P2 is in effect and ``--steps 1`` goes on to P1 instead of bouncing back to P2.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gitops import git
from gitops.errors import GitopsError
from gitops.model import release
from gitops.model.release import Pins
from gitops.release import history, rendered
from gitops.release import transaction as change
from gitops.release.history import Event


@dataclass
class RollbackPlan:
    env: str
    app: str
    base: str
    current: Pins
    target: Event  # the change whose release comes back
    undone: str  # the commit being rolled back (the release change in effect)
    undone_subject: str
    pins: Pins

    def summary(self) -> str:
        return f"{self.app} {history.describe(self.current, self.pins)}"


def _listing(candidates: list[Event], app: str) -> str:
    rows = []
    for e in candidates[:10]:
        c = e.app(app)
        what = f"{c.new.short_image()} chart {c.new.short_revision()}" if c and c.new else "?"
        rows.append(f"  {e.sha[:12]}  {e.date}  {e.kind:<8} {what}  {e.subject}")
    return "\n".join(rows) or "  (none)"


def _pins(e: Event, app: str) -> Pins | None:
    c = e.app(app)
    return c.new if c else None


def plan(root: Path, env: str, app: str, to: str | None, steps: int | None) -> RollbackPlan:
    layout = release.layout(root)
    layout.require_env(env)
    layout.require_app(env, app)
    if env not in layout.promoted:
        raise GitopsError(
            f"{env} runs the chart on main and receives images from builds: roll it back by reverting the change on "
            f"main (`git revert <commit>`), or let the next build replace it"
        )
    current = release.read(root, env, app)
    assert current is not None
    changes = [e for e in history.events(root, env=env, app=app) if e.kind in history.RELEASE_KINDS]
    promotions = [e for e in changes if e.kind == "promote"]
    # The first recorded release: what the environment ran before its first promotion (its creation, usually).
    before = changes[changes.index(promotions[-1]) + 1 :] if promotions else []
    first = before[0] if before and _pins(before[0], app) is not None else None
    candidates = promotions + ([first] if first else [])

    in_effect = next((e for e in candidates if _pins(e, app) == current), None)
    if to is not None:
        sha = git.rev_parse(root, to)
        target = next((e for e in changes if e.sha == sha), None)
        if target is None:
            raise GitopsError(
                f"{to!r} is not a commit that changed the release of {app} in {env} "
                f"({release.release_file(env, app)}); the recent ones (newest first):\n" + _listing(changes, app)
            )
    else:
        n = 1 if steps is None else steps
        if n < 1:
            raise GitopsError(f"--steps must be 1 or more (got {n})")
        if not candidates:
            raise GitopsError(f"no promotion of {app} to {env} is recorded in this history: nothing to roll back to")
        if in_effect is None:
            raise GitopsError(
                f"{release.release_file(env, app)} matches no recorded promotion (edited by hand?), so --steps has "
                f"nothing to count from; name the release to restore with --to:\n" + _listing(changes, app)
            )
        i = candidates.index(in_effect)
        if i + n >= len(candidates):
            raise GitopsError(
                f"{env}/{app} runs the release of {in_effect.sha[:12]}, and {len(candidates) - i - 1} earlier "
                f"release(s) are recorded (its promotions, and the release before the first one); cannot go back "
                f"{n}:\n" + _listing(candidates, app)
            )
        target = candidates[i + n]
    pins = _pins(target, app)
    if pins is None:
        text = git.show(root, target.sha, release.release_file(env, app))
        # Parsing again gives the reason (an older release format names its fix); a missing file says so.
        if text is not None:
            release.parse(text, f"{release.release_file(env, app)} at {target.sha[:12]}")
        raise GitopsError(f"{release.release_file(env, app)} is missing at {target.sha[:12]}")
    if not pins.chart_tree:
        raise GitopsError(
            f"{release.release_file(env, app)} at {target.sha[:12]} is in the release format from before promoted "
            f"charts were copied into the environment (chart.revision {pins.revision}): there is no chart copy to "
            "restore; pick a later release (docs/adr/0006-promoted-charts-are-copied-into-the-environment.md)"
        )
    undone = in_effect or changes[0]
    return RollbackPlan(env, app, git.head(root), current, target, undone.sha, undone.subject, pins)


def what_changes(root: Path, p: RollbackPlan) -> list[str]:
    """Exactly what the rollback changes, and what it leaves alone, line by line."""
    lines = [f"image {p.current.image} → {p.pins.image}" if not p.current.same_image(p.pins) else "image unchanged"]
    chart = release.chart_dir(p.env, p.app)
    if p.current.same_chart(p.pins):
        lines.append(f"chart unchanged ({chart}/ copied from {p.pins.chart_commit[:12]})")
    else:
        files = git.changed_paths(root, p.current.chart_tree, p.pins.chart_tree)
        lines.append(
            f"chart {chart}/ copied from {p.current.chart_commit[:12]} → {p.pins.chart_commit[:12]}"
            f" ({len(files)} file(s) differ)"
        )
    values = f"environments/{p.env}/{p.app}/values.yaml"
    old_values = git.show(root, p.target.sha, values)
    now = git.show(root, p.base, values)
    if old_values == now:
        lines.append(f"{values} unchanged (the same as at {p.target.sha[:12]})")
    else:
        diff = history.values_changes(history.load_values(old_values, values), history.load_values(now, values))
        lines.append(
            f"{values} stays as on main: a rollback restores releases, not values "
            f"(since {p.target.sha[:12]}: {history.describe_values(diff)})"
        )
    return lines


def message(p: RollbackPlan, changes: list[str]) -> str:
    subject = f"rollback({p.env}): {p.summary()}"
    body = (
        f"Restore the release of {p.app} in {p.env} from {p.target.sha[:12]} ({p.target.subject}),\n"
        f"undoing {p.undone[:12]} ({p.undone_subject}).\n\n" + "\n".join(f"- {line}" for line in changes)
    )
    trailers = [
        (history.ROLLBACK_OF, p.undone),
        (history.ROLLED_BACK_TO, p.target.sha),
        (history.ENVIRONMENT, p.env),
        (history.APP, p.app),
        (history.IMAGE, p.pins.image),
        (history.CHART_COMMIT, p.pins.chart_commit),
    ]
    return git.with_trailers(subject + "\n\n" + body, trailers)


def rollback(root: Path, env: str, app: str, to: str | None, steps: int | None, dry_run: bool) -> str:
    if to is not None and steps is not None:
        raise GitopsError("give either --to COMMIT or --steps N, not both")
    if not dry_run:
        git.require_clean(root, "rollback")
    p = plan(root, env, app, to, steps)
    if p.pins == p.current:
        return f"nothing to roll back: {env}/{app} already runs the release of {p.target.sha[:12]}\n"
    changes = what_changes(root, p)
    listed = "".join(f"  {line}\n" for line in changes)
    if dry_run:
        return f"would roll back {env}: {p.summary()} (to {p.target.sha[:12]}, undoing {p.undone[:12]}):\n" + listed
    path = release.release_file(env, app)
    trees = {} if p.current.same_chart(p.pins) else {release.chart_dir(env, app): p.pins.chart_tree}
    c = change.Change(
        files={path: release.update((root / path).read_text(), p.pins, path)},
        trees=trees,
        message=message(p, changes),
        validate_envs=[env],
        what=f"the rollback of {app} in {env}",
    )
    removed: list[str] = []

    def prepare(tree: Path, base: str, sha: str) -> None:
        if trees:  # only a different chart can stop rendering an object
            removed.extend(rendered.tree_diff(tree, env, base).removed)

    sha = change.apply(root, c, p.base, prepare)
    prune = "".join(f"{line}\n" for line in rendered.pruning_note(root, env, removed))
    return f"rolled back {env} in {sha[:12]}: {p.summary()} (restores {p.target.sha[:12]}):\n" + listed + prune
