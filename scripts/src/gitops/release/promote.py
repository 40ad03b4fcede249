"""`gitops promote`: move what an environment runs to the next environment in the promotion order, as one commit.

What moves is each app's release: the image (repository, tag, digest) and the chart. The chart is copied: the
target's ``environments/<target>/<app>/chart/`` becomes byte for byte the chart the source runs, and its release.yaml
records where it came from (``chart.commit``, ``chart.tree``). From the first environment, which runs
``apps/<app>/chart`` on ``main``, that is the chart at the exact commit being promoted: HEAD of the checkout (or
``--source-commit``, the revision Argo CD reported healthy in dev). From a later one, its own copy. The chart moves
only when its tree differs, so promoting twice with nothing new is a no-op. Values never move: each environment's
``values.yaml`` is its own and takes effect the moment it is merged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from gitops import git
from gitops.errors import GitopsError
from gitops.model import release
from gitops.model.release import Pins
from gitops.release import diffnoise, history, rendered
from gitops.release import transaction as change


@dataclass
class AppMove:
    app: str
    old: Pins
    new: Pins
    commits: list[str]  # `git log --oneline old..new -- apps/<app>`, newest first
    commits_known: bool = True  # False when the old chart commit is not in this clone

    @property
    def changed(self) -> bool:
        return self.old != self.new

    @property
    def chart_changed(self) -> bool:
        return self.old.chart_tree != self.new.chart_tree

    def summary(self) -> str:
        return f"{self.app} {history.describe(self.old, self.new)}"


@dataclass
class Plan:
    source: str
    target: str
    base: str  # HEAD, which the promotion commit goes on top of
    source_commit: str  # the commit being promoted: where the source's release is read (HEAD unless told otherwise)
    moves: list[AppMove]  # apps whose release changes
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


def _source_commit(root: Path, source: str, base: str, source_commit: str | None, notes: list[str]) -> str:
    """The commit being promoted: ``--source-commit`` (which must be in HEAD's history), else HEAD."""
    if source_commit:
        resolved = git.rev_parse(root, source_commit)
        if resolved is None or not git.is_ancestor(root, resolved, base):
            raise GitopsError(
                f"--source-commit {source_commit!r} is not a commit in HEAD's history: only what the source has run "
                "on this branch can be promoted"
            )
        if resolved != base:
            newer = git.count_commits(root, resolved, base, ".")
            notes.append(
                f"promoting {source} as of {resolved[:12]} (--source-commit), not HEAD {base[:12]}: the {newer} "
                f"commit(s) since are not part of this promotion"
            )
        return resolved
    # The checkout's HEAD holds the source's release and is what is being promoted. Say so when the local branch the
    # first environment follows points elsewhere: an unusual checkout, e.g. a stale `main` beside a fresh origin/main.
    local = git.rev_parse(root, f"refs/heads/{release.FOLLOWED}")
    if local is not None and local != base:
        notes.append(
            f"warning: promoting HEAD ({base[:12]}), but the local branch {release.FOLLOWED} is at {local[:12]}: "
            f"{source} runs what {release.FOLLOWED} has on the server; check that HEAD is the commit you mean"
        )
    return base


def _source_release(root: Path, layout: release.Layout, source: str, app: str, at: str) -> Pins:
    """The source's release as a target receives it: the first environment's chart resolved to the exact tree of
    apps/<app>/chart at the commit being promoted."""
    src = release.read(root, source, app, at)
    if src is None:
        raise GitopsError(f"{release.release_file(source, app)} does not exist at {at[:12]}")
    if source in layout.promoted:
        return src
    tree = git.tree_id(root, at, release.source_chart(app))
    if tree is None:
        raise GitopsError(f"{release.source_chart(app)} does not exist at {at[:12]}: there is no chart to promote")
    return Pins(src.repository, src.tag, src.digest, at, tree)


def plan(root: Path, source: str, target: str, apps: list[str], source_commit: str | None = None) -> Plan:
    layout = release.layout(root)
    check_order(layout, source, target)
    for app in apps:
        layout.require_app(source, app)
        if app not in layout.apps.get(target, []):
            raise GitopsError(
                f"{app} has no release in {target}: {release.release_file(target, app)} does not exist; an app's first "
                f"release in {target} is a reviewed change of its own (`gitops new-app {app} --env {target}`)"
            )
    base = git.head(root)
    notes: list[str] = []
    at = _source_commit(root, source, base, source_commit, notes)
    result = Plan(source=source, target=target, base=base, source_commit=at, moves=[], notes=notes)
    for app in apps or layout.apps.get(source, []):
        if app not in layout.apps.get(target, []):
            result.notes.append(
                f"{app}: no release in {target} yet ({release.release_file(target, app)}); skipped — its first "
                f"release there is `gitops new-app {app} --env {target}`"
            )
            continue
        old = release.read(root, target, app)
        assert old is not None
        new = _source_release(root, layout, source, app, at)
        if new.chart_tree == old.chart_tree:
            # The same chart, byte for byte: keep the record of where the target's copy came from.
            new = Pins(new.repository, new.tag, new.digest, old.chart_commit, old.chart_tree)
        move = _move(root, app, old, new)
        (result.moves.append(move) if move.changed else result.unchanged.append(app))
    return result


def _move(root: Path, app: str, old: Pins, new: Pins) -> AppMove:
    if old.chart_commit == new.chart_commit:
        return AppMove(app, old, new, [])
    if git.rev_parse(root, old.chart_commit) is None:
        return AppMove(app, old, new, [], commits_known=False)
    return AppMove(app, old, new, git.log_oneline(root, old.chart_commit, new.chart_commit, f"apps/{app}"))


def message(p: Plan) -> str:
    subject = f"promote({p.target}): " + ", ".join(m.summary() for m in p.moves)
    body = [f"Promote {p.source}'s release to {p.target} as of {p.source_commit[:12]}.", ""]
    # Bullets, not `key: value` lines: the last body paragraph must never read as a trailer block.
    for m in p.moves:
        body.append(f"- {m.app} image {m.old.image} → {m.new.image}")
        if m.chart_changed:
            count = f"{len(m.commits)} commit(s) under apps/{m.app}/" if m.commits_known else "history not in clone"
            body.append(
                f"- {m.app} chart {release.chart_dir(p.target, m.app)}/ copied from {m.new.chart_commit[:12]} "
                f"(was {m.old.chart_commit[:12]}; {count})"
            )
        else:
            body.append(f"- {m.app} chart unchanged ({m.new.chart_commit[:12]})")
    trailers: list[tuple[str, str]] = [
        (history.PROMOTED_FROM, p.source),
        (history.PROMOTED_TO, p.target),
        (history.SOURCE_COMMIT, p.source_commit),
    ]
    for m in p.moves:
        trailers += [(history.APP, m.app), (history.IMAGE, m.new.image), (history.CHART_COMMIT, m.new.chart_commit)]
    return git.with_trailers(subject + "\n\n" + "\n".join(body), trailers)


def the_change(root: Path, p: Plan) -> change.Change:
    files, trees = {}, {}
    for m in p.moves:
        path = release.release_file(p.target, m.app)
        files[path] = release.update((root / path).read_text(), m.new, path)
        if m.chart_changed:
            trees[release.chart_dir(p.target, m.app)] = m.new.chart_tree
    return change.Change(
        files=files,
        trees=trees,
        message=message(p),
        validate_envs=[p.target],
        what=f"the promotion of {p.source} to {p.target}",
    )


def _code(value: str) -> str:
    return f"`{value}`"


def chart_diff(root: Path, target: str, m: AppMove) -> str:
    """The promoted chart's own diff, as the PR's file view will show it under environments/<target>/<app>/chart/."""
    prefix = f"{release.chart_dir(target, m.app)}/"
    prefixes = (f"--src-prefix=a/{prefix}", f"--dst-prefix=b/{prefix}")
    return git.run(root, "diff", "--no-color", *prefixes, m.old.chart_tree, m.new.chart_tree)


@dataclass
class Body:
    text: str  # the PR description, within GitHub's limit
    full_diff: str  # the whole rendered diff of the target, for the file the workflow keeps


def pr_body(
    root: Path, p: Plan, sha: str, diff: rendered.TreeDiff, *, dry_run: bool = False, diff_file: str = ""
) -> Body:
    """The promotion PR's description: per app the image and chart it moves, the app commits and the chart's own
    diff, what prod will need pruned, then the rendered diff of the target (without comment and chart-version label
    noise), cut to GitHub's limit. ``diff.whole`` is the complete rendered diff."""
    review = diff.review
    commit = "a dry run: nothing committed" if dry_run else f"commit {_code(sha[:12])}"
    head = [
        f"## Promote {p.source} → {p.target}",
        "",
        f"Promotes what `{p.source}` runs as of {_code(p.source_commit)} to `{p.target}` ({commit}). "
        f"Merging this PR is the deployment: Argo CD syncs `{p.target}` from main. The values of `{p.target}` are not "
        "part of a promotion; they already apply as they are on main.",
        "",
    ]
    sections: list[tuple[str, str, str]] = []
    for m in p.moves:
        chart_dir = release.chart_dir(p.target, m.app)
        head += [
            f"### {m.app}",
            "",
            f"| | {p.target} now | after merge |",
            "| --- | --- | --- |",
            f"| image | {_code(m.old.image)} | {_code(m.new.image)} |",
            f"| chart (`{chart_dir}/`) | apps/{m.app}/chart at {_code(m.old.chart_commit[:12])} "
            f"| apps/{m.app}/chart at {_code(m.new.chart_commit[:12])} |",
            "",
        ]
        if not m.chart_changed:
            head += ["Chart unchanged: only the image moves.", ""]
            continue
        if not m.commits_known:
            head += [f"The old chart commit is not in this clone: the changelog of `apps/{m.app}/` is unknown.", ""]
        else:
            rng = f"{m.old.chart_commit[:12]}..{m.new.chart_commit[:12]}"
            head += [
                f"Commits under `apps/{m.app}/` (`git log --oneline {rng} -- apps/{m.app}`):",
                "",
                "```",
                *(m.commits or ["(none)"]),
                "```",
                "",
            ]
        cdiff = chart_diff(root, p.target, m)
        sections.append(
            (
                f"#### Chart diff of `{m.app}` ({_size(cdiff)})",
                cdiff,
                f"git diff {m.old.chart_tree[:12]} {m.new.chart_tree[:12]}",
            )
        )
    if p.unchanged:
        head += [f"Already current in `{p.target}`: {', '.join(p.unchanged)}.", ""]
    head += rendered.pruning_note(root, p.target, diff.removed, markdown=True)
    rerun = (
        f"gitops diff {p.base[:12]} {sha[:12]} --env {p.target}" if not dry_run else f"gitops render --env {p.target}"
    )
    left_out = diffnoise.changed_lines(diff.whole) - diffnoise.changed_lines(review)
    about = [_size(review)]
    if left_out:
        about.append(f"{left_out} changed comment and chart-version label line(s) left out")
    if diff_file:
        about.append(f"the complete diff is `{diff_file}`")
    sections.append((f"### Rendered diff of `{p.target}` ({'; '.join(about)})", review, rerun))
    return Body(rendered.fit_sections("\n".join(head), sections), diff.whole)


def _size(diff: str) -> str:
    lines = diff.count("\n")
    return f"{lines:,} line{'s' if lines != 1 else ''}, {len(diff):,} characters"


def promote(
    root: Path,
    source: str,
    target: str,
    apps: list[str],
    body_file: Path | None,
    dry_run: bool,
    source_commit: str | None = None,
    diff_file: Path | None = None,
) -> str:
    """Run a promotion; returns what to print. Raises GitopsError on every refusal, before anything is written.

    A dry run builds, validates and describes the same commit, then discards it: only ``body_file`` and
    ``diff_file`` are written, so a reviewer can read the PR body before anything is committed."""
    if not dry_run:
        git.require_clean(root, "promote")
    p = plan(root, source, target, apps, source_commit)
    notes = "".join(f"{n}\n" if n.startswith("warning: ") else f"note: {n}\n" for n in p.notes)
    if p.empty:
        if body_file is not None:
            body_file.write_text(f"Nothing to promote: `{target}` already runs `{source}`'s release.\n")
        if diff_file is not None:
            diff_file.write_text("")
        return notes + f"nothing to promote: {target} already runs {source}'s release\n"

    bodies: dict[str, Body] = {}

    def prepare(tree: Path, base: str, sha: str) -> None:
        if body_file is not None or diff_file is not None:
            diff = rendered.tree_diff(tree, target, base, diffnoise.clean)
            name = diff_file.name if diff_file is not None else ""
            bodies["pr"] = pr_body(tree, p, sha, diff, dry_run=dry_run, diff_file=name)

    c = the_change(root, p)
    sha = change.apply(root, c, p.base, prepare, land=not dry_run)
    verb = "would promote" if dry_run else "promoted"
    where = "validated, not committed" if dry_run else f"in {sha[:12]}"
    out = notes + f"{verb} {source} → {target} ({where}; source commit {p.source_commit[:12]}):\n"
    out += "".join(f"  {m.summary()}\n" for m in p.moves)
    if dry_run:
        out += "".join(rendered.unified((root / f).read_text(), t, f"a/{f}", f"b/{f}") for f, t in c.files.items())
        out += "".join(f"  {folder}/ ← chart tree {tree}\n" for folder, tree in c.trees.items())
    if "pr" in bodies:
        if body_file is not None:
            body_file.write_text(bodies["pr"].text)
            out += f"PR body written to {body_file}\n"
        if diff_file is not None:
            diff_file.write_text(bodies["pr"].full_diff)
            out += f"rendered diff written to {diff_file}\n"
    return out
