"""`gitops rollback`: a new commit that puts back the release pins of an earlier promotion. History is never
rewritten: the rollback is itself a release change, reviewed and recorded like a promotion.

Which promotion is "in effect" is found by content, not by position: the newest promotion of the app to the
environment whose pins equal the current ones. So after rolling back from P3 to P2, P2 is in effect and
``--steps 1`` goes on to P1 instead of bouncing back to P2.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gitops import change, gitutil, history, release
from gitops.errors import GitopsError
from gitops.history import Event
from gitops.release import Pins


@dataclass
class RollbackPlan:
    env: str
    app: str
    base: str
    current: Pins
    target: Event  # the promotion whose pins come back
    undone: str  # the commit being rolled back (the promotion in effect, else the last change of the pins)
    undone_subject: str
    pins: Pins

    def summary(self) -> str:
        return f"{self.app} {history.describe(self.current, self.pins)}"


def _listing(promotions: list[Event], app: str) -> str:
    rows = []
    for e in promotions[:10]:
        change_ = e.app(app)
        what = change_.new.short_image() if change_ and change_.new else "?"
        rows.append(f"  {e.sha[:12]}  {e.date}  {what}  {e.subject}")
    return "\n".join(rows) or "  (none)"


def plan(root: Path, env: str, app: str, to: str | None, steps: int | None) -> RollbackPlan:
    layout = release.layout(root)
    layout.require_env(env)
    layout.require_app(env, app)
    current = release.read(root, env, app)
    assert current is not None
    all_events = history.events(root, env=env, app=app)
    promotions = [e for e in all_events if e.kind == "promote"]
    if not promotions:
        raise GitopsError(f"no promotion of {app} to {env} is recorded in this history: nothing to roll back to")

    def pins_of(e: Event) -> Pins | None:
        c = e.app(app)
        return c.new if c else None

    in_effect = next((e for e in promotions if pins_of(e) == current), None)
    if to is not None:
        sha = gitutil.rev_parse(root, to)
        target = next((e for e in promotions if e.sha == sha), None)
        if target is None:
            raise GitopsError(
                f"{to!r} is not a promotion of {app} to {env}; recent ones (newest first):\n"
                + _listing(promotions, app)
            )
    else:
        n = 1 if steps is None else steps
        if n < 1:
            raise GitopsError(f"--steps must be 1 or more (got {n})")
        if in_effect is None:
            raise GitopsError(
                f"{release.release_file(env, app)} matches no recorded promotion (edited by hand?), so "
                f"--steps has nothing to count from; name the promotion to restore with --to:\n"
                + _listing(promotions, app)
            )
        i = promotions.index(in_effect)
        if i + n >= len(promotions):
            raise GitopsError(
                f"{env}/{app} runs the release of {in_effect.sha[:12]}, which has {len(promotions) - i - 1} earlier "
                f"promotion(s); cannot go back {n}:\n" + _listing(promotions, app)
            )
        target = promotions[i + n]
    pins = pins_of(target)
    if pins is None:
        raise GitopsError(f"{release.release_file(env, app)} is missing at {target.sha[:12]}")
    undone = in_effect or all_events[0]
    return RollbackPlan(env, app, gitutil.head(root), current, target, undone.sha, undone.subject, pins)


def message(p: RollbackPlan) -> str:
    subject = f"rollback({p.env}): {p.summary()}"
    body = (
        f"Restore the release pins of {p.app} in {p.env} from {p.target.sha[:12]} ({p.target.subject}),\n"
        f"undoing {p.undone[:12]} ({p.undone_subject}).\n\n"
        f"- image {p.current.image} → {p.pins.image}\n"
        f"- chart {p.current.revision} → {p.pins.revision}"
    )
    trailers = [
        (history.ROLLBACK_OF, p.undone),
        (history.ROLLED_BACK_TO, p.target.sha),
        (history.ENVIRONMENT, p.env),
        (history.APP, p.app),
        (history.IMAGE, p.pins.image),
        (history.CHART_REVISION, p.pins.revision),
    ]
    return gitutil.with_trailers(subject + "\n\n" + body, trailers)


def rollback(root: Path, env: str, app: str, to: str | None, steps: int | None, dry_run: bool) -> str:
    if to is not None and steps is not None:
        raise GitopsError("give either --to COMMIT or --steps N, not both")
    if not dry_run:
        gitutil.require_clean(root, "rollback")
    p = plan(root, env, app, to, steps)
    if p.pins == p.current:
        return f"nothing to roll back: {env}/{app} already runs the release of {p.target.sha[:12]}\n"
    path = release.release_file(env, app)
    notes = ""
    values = f"environments/{env}/{app}/values.yaml"
    if gitutil.tree_id(root, p.target.sha, values) != gitutil.tree_id(root, p.base, values):
        notes = f"note: {values} changed since {p.target.sha[:12]}; a rollback restores release pins only\n"
    if dry_run:
        return notes + f"would roll back {env}: {p.summary()} (to {p.target.sha[:12]}, undoing {p.undone[:12]})\n"
    c = change.Change(
        files={path: release.update((root / path).read_text(), p.pins, path)},
        message=message(p),
        validate_envs=[env],
        what=f"the rollback of {app} in {env}",
    )
    sha = change.apply(root, c, p.base)
    return notes + f"rolled back {env} in {sha[:12]}: {p.summary()} (restores {p.target.sha[:12]})\n"
