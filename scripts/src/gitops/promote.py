"""`gitops promote`: move what an environment runs to the next environment in the promotion order, as one commit.

What moves is the release pins of each app (image repository/tag/digest, chart revision); values never move. A source
that follows a branch (dev's ``chart.revision: main``) is promoted as the exact commit being promoted: HEAD of the
checkout the command runs in, which holds dev's pins (or ``--source-commit``, an earlier commit of the branch, e.g.
the revision Argo CD reported healthy in dev). The chart revision only moves when what the target reads at
its pin — the app's folder (``apps/<app>/``) or the target's overlay — differs between the target's revision and that
commit, so promoting twice with nothing new is a no-op rather than a new pin to an identical tree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from gitops import change, gitutil, history, release, rendered
from gitops.errors import GitopsError
from gitops.release import Pins


@dataclass
class AppMove:
    app: str
    old: Pins
    new: Pins
    commits: list[str]  # `git log --oneline old..new -- apps/<app>`, newest first
    commits_known: bool = True  # False when the old revision is not in this clone

    @property
    def changed(self) -> bool:
        return self.old != self.new

    def summary(self) -> str:
        return f"{self.app} {history.describe(self.old, self.new)}"


@dataclass
class Plan:
    source: str
    target: str
    base: str  # HEAD, which the promotion commit goes on top of
    source_commit: str  # the commit being promoted: where the source's pins are read (HEAD unless told otherwise)
    moves: list[AppMove]  # apps whose pins change
    unchanged: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.moves


def check_order(layout: release.Layout, source: str, target: str) -> None:
    for env in (source, target):
        layout.require_env(env)
    if source not in layout.order or target not in layout.order:
        missing = source if source not in layout.order else target
        raise GitopsError(
            f"{missing!r} is not in environments/promotion.yaml `order` ({' → '.join(layout.order)}); "
            "only environments in the promotion order can be promoted"
        )
    i, j = layout.order.index(source), layout.order.index(target)
    if j != i + 1:
        expected = layout.order[i + 1] if i + 1 < len(layout.order) else None
        hint = f"{source} promotes to {expected}" if expected else f"{source} is the last environment"
        raise GitopsError(
            f"cannot promote {source} to {target}: environments/promotion.yaml orders {' → '.join(layout.order)} "
            f"and a release only moves to the next environment ({hint})"
        )


def resolve_revision(root: Path, revision: str, base: str, file: str) -> str:
    """An exact commit for ``revision``: itself when it is one, else ``base`` (the commit being promoted)."""
    if gitutil.SHA_RE.match(revision):
        if gitutil.rev_parse(root, revision) is None:
            raise GitopsError(f"{file}: chart.revision {revision} names no commit in this clone (fetch it first)")
        return revision
    # A branch-following source runs the branch head; the checkout's HEAD is the commit that holds the source's pins
    # and is what is being promoted. Warn when the local branch of that name points elsewhere (an unusual checkout).
    local = gitutil.rev_parse(root, f"refs/heads/{revision}")
    if local is not None and local != base:
        import click

        click.echo(
            f"warning: {file} follows {revision!r} (at {local[:12]}) but HEAD is {base[:12]}: promoting HEAD", err=True
        )
    return base


def plan(root: Path, source: str, target: str, apps: list[str], source_commit: str | None = None) -> Plan:
    layout = release.layout(root)
    check_order(layout, source, target)
    for app in apps:
        layout.require_app(source, app)
        if app not in layout.apps.get(target, []):
            raise GitopsError(
                f"{app} has no release in {target}: {release.release_file(target, app)} does not exist; adding an app "
                f"to an environment (its values.yaml, its release) is a reviewed change, not a promotion"
            )
    base = gitutil.head(root)
    at = base
    if source_commit:
        resolved = gitutil.rev_parse(root, source_commit)
        if resolved is None or not gitutil.is_ancestor(root, resolved, base):
            raise GitopsError(
                f"--source-commit {source_commit!r} is not a commit in HEAD's history: only what the source has run "
                "on this branch can be promoted"
            )
        at = resolved
    result = Plan(source=source, target=target, base=base, source_commit=at, moves=[])
    selected = apps or layout.apps.get(source, [])
    for app in selected:
        if app not in layout.apps.get(target, []):
            result.notes.append(f"{app}: no release in {target} ({release.release_file(target, app)}); skipped")
            continue
        src = release.read(root, source, app, None if at == base else at)
        dst = release.read(root, target, app)
        if src is None:
            raise GitopsError(f"{release.release_file(source, app)} does not exist at {at[:12]}")
        assert dst is not None
        src_file = release.release_file(source, app)
        revision = src.revision
        if target in layout.pinned:
            revision = resolve_revision(root, src.revision, at, src_file)
        move = _move(root, app, target, dst, Pins(src.repository, src.tag, src.digest, revision))
        if move.changed:
            result.moves.append(move)
        else:
            result.unchanged.append(app)
    return result


def _move(root: Path, app: str, target: str, old: Pins, new: Pins) -> AppMove:
    app_dir = f"apps/{app}"
    # The target reads its chart and its overlay at the pinned commit (one repository, one revision per Argo CD
    # Application), so the pin moves when either differs.
    read_at_pin = (app_dir, f"environments/{target}/{app}/values.yaml")
    if old.revision != new.revision and gitutil.SHA_RE.match(new.revision):
        if gitutil.rev_parse(root, old.revision) is None:
            return AppMove(app, old, new, [], commits_known=False)
        if all(gitutil.tree_id(root, old.revision, p) == gitutil.tree_id(root, new.revision, p) for p in read_at_pin):
            # Same chart and overlay at both commits: what the target runs would not change; keep its pin.
            new = Pins(new.repository, new.tag, new.digest, old.revision)
    commits: list[str] = []
    if old.revision != new.revision and gitutil.rev_parse(root, old.revision) and gitutil.rev_parse(root, new.revision):
        commits = gitutil.log_oneline(root, old.revision, new.revision, app_dir)
    return AppMove(app, old, new, commits)


def message(p: Plan) -> str:
    subject = f"promote({p.target}): " + ", ".join(m.summary() for m in p.moves)
    body = [f"Promote {p.source}'s release to {p.target} as of {p.source_commit[:12]}.", ""]
    # Bullets, not `key: value` lines: the last body paragraph must never read as a trailer block.
    for m in p.moves:
        body.append(f"- {m.app} image {m.old.image} → {m.new.image}")
        if m.old.revision != m.new.revision:
            count = f"{len(m.commits)} commit(s) under apps/{m.app}/" if m.commits_known else "history not in clone"
            body.append(f"- {m.app} chart {m.old.revision} → {m.new.revision} ({count})")
        else:
            body.append(f"- {m.app} chart {m.new.revision} (unchanged)")
    trailers: list[tuple[str, str]] = [
        (history.PROMOTED_FROM, p.source),
        (history.PROMOTED_TO, p.target),
        (history.SOURCE_COMMIT, p.source_commit),
    ]
    for m in p.moves:
        trailers += [(history.APP, m.app), (history.IMAGE, m.new.image), (history.CHART_REVISION, m.new.revision)]
    return gitutil.with_trailers(subject + "\n\n" + "\n".join(body), trailers)


def new_files(root: Path, p: Plan) -> dict[str, str]:
    files = {}
    for m in p.moves:
        path = release.release_file(p.target, m.app)
        files[path] = release.update((root / path).read_text(), m.new, path)
    return files


def preview(root: Path, p: Plan) -> str:
    """What a dry run prints: the summary and the exact release.yaml edits."""
    lines = [f"would promote {p.source} → {p.target} (source commit {p.source_commit[:12]}):"]
    lines += [f"  {m.summary()}" for m in p.moves]
    out = "\n".join(lines) + "\n"
    for path, text in new_files(root, p).items():
        out += rendered.unified((root / path).read_text(), text, f"a/{path}", f"b/{path}")
    return out


def _code(value: str) -> str:
    return f"`{value}`"


def pr_body(root: Path, p: Plan, sha: str, diff: str) -> str:
    """The promotion PR's description: per app what moves and which app commits it brings, then the rendered diff
    of the target environment, cut to GitHub's limit."""
    head = [
        f"## Promote {p.source} → {p.target}",
        "",
        f"Promotes what `{p.source}` runs as of {_code(p.source_commit)} to `{p.target}` (commit {_code(sha[:12])}). "
        "Merging this PR is the deployment: Argo CD syncs the merged pins.",
        "",
    ]
    for m in p.moves:
        head += [
            f"### {m.app}",
            "",
            f"| | {p.target} now | after merge |",
            "| --- | --- | --- |",
            f"| image | {_code(m.old.image)} | {_code(m.new.image)} |",
            f"| chart revision | {_code(m.old.revision)} | {_code(m.new.revision)} |",
            "",
        ]
        if m.old.revision == m.new.revision:
            head += [f"Chart revision unchanged: no commits under `apps/{m.app}/`.", ""]
        elif not m.commits_known:
            head += [f"The old chart revision is not in this clone: the changelog of `apps/{m.app}/` is unknown.", ""]
        else:
            rng = f"{m.old.revision[:12]}..{m.new.revision[:12]}"
            head += [
                f"Commits under `apps/{m.app}/` (`git log --oneline {rng} -- apps/{m.app}`):",
                "",
                "```",
                *(m.commits or ["(none)"]),
                "```",
                "",
            ]
    if p.unchanged:
        head += [f"Already current in `{p.target}`: {', '.join(p.unchanged)}.", ""]
    rerun = f"gitops diff {p.base[:12]} {sha[:12]} --env {p.target}"
    return rendered.fit_sections("\n".join(head), [(f"### Rendered diff of `{p.target}`", diff, rerun)])


def promote(
    root: Path,
    source: str,
    target: str,
    apps: list[str],
    body_file: Path | None,
    dry_run: bool,
    source_commit: str | None = None,
) -> str:
    """Run a promotion; returns what to print. Raises GitopsError on every refusal, before anything is written."""
    if not dry_run:
        gitutil.require_clean(root, "promote")
    p = plan(root, source, target, apps, source_commit)
    notes = "".join(f"note: {n}\n" for n in p.notes)
    if p.empty:
        if body_file is not None and not dry_run:
            body_file.write_text(f"Nothing to promote: `{target}` already runs `{source}`'s release.\n")
        return notes + f"nothing to promote: {target} already runs {source}'s release\n"
    if dry_run:
        return notes + preview(root, p)

    bodies: dict[str, str] = {}

    def prepare(tree: Path, base: str, sha: str) -> None:
        if body_file is not None:
            bodies["pr"] = pr_body(tree, p, sha, rendered.tree_diff(tree, target, base))

    c = change.Change(
        files=new_files(root, p),
        message=message(p),
        validate_envs=[target],
        what=f"the promotion of {source} to {target}",
    )
    sha = change.apply(root, c, p.base, prepare)
    out = notes + f"promoted {source} → {target} in {sha[:12]}:\n" + "".join(f"  {m.summary()}\n" for m in p.moves)
    if body_file is not None:
        body_file.write_text(bodies["pr"])
        out += f"PR body written to {body_file}\n"
    return out
