"""`gitops status`: apps by environments — what each runs, what is pending for it, and the last change to it.

Pending, per app and environment, is what would change what runs there and has not yet:

- ``image`` and ``chart``: what a promotion from the environment before it would bring (the image differs; the
  chart differs, with the app commits it lacks);
- ``release``/``values``: a change to the environment's release or overlay in this checkout that is not on the
  tracked branch yet (committed on a branch, or not committed): it takes effect when it is merged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from gitops import git
from gitops.model import TRACKED_BRANCH, release
from gitops.model.release import Pins
from gitops.release import history


@dataclass
class Cell:
    env: str
    app: str
    pins: Pins
    resolved: str | None  # the commit of apps/<app>/chart this environment's chart is (HEAD when it follows main)
    behind_of: str = ""  # the environment before this one in the promotion order
    chart_behind: int | None = None  # app commits the previous environment's chart has that this one lacks
    chart_differs: bool = False
    image_differs: bool = False
    unmerged: list[str] = field(default_factory=list)  # "release", "values": changed here, not on the branch yet
    last: history.Event | None = None

    @property
    def behind(self) -> bool:
        return self.chart_differs or self.image_differs

    def pending(self) -> list[str]:
        out = []
        if self.image_differs:
            out.append(f"image from {self.behind_of}")
        if self.chart_differs:
            n = "?" if self.chart_behind is None else str(self.chart_behind)
            out.append(f"chart from {self.behind_of} ({n} app commit(s))")
        out += [f"{what} not on {TRACKED_BRANCH}" for what in self.unmerged]
        return out

    def state(self) -> str:
        pending = self.pending()
        if pending:
            return ", ".join(pending)
        return f"current with {self.behind_of}" if self.behind_of else "-"

    def to_dict(self) -> dict:
        return {
            "env": self.env,
            "app": self.app,
            "image": self.pins.image,
            "repository": self.pins.repository,
            "tag": self.pins.tag,
            "digest": self.pins.digest,
            "chart_commit": self.pins.chart_commit or None,
            "chart_tree": self.pins.chart_tree or None,
            "chart_follows": TRACKED_BRANCH if self.pins.follows else None,
            "resolved_revision": self.resolved,
            "behind": (
                {
                    "of": self.behind_of,
                    "image_differs": self.image_differs,
                    "chart_differs": self.chart_differs,
                    "app_commits": self.chart_behind,
                }
                if self.behind_of
                else None
            ),
            "unmerged": self.unmerged,
            "pending": self.pending(),
            "last_change": (
                {
                    "kind": self.last.kind,
                    "commit": self.last.sha,
                    "date": self.last.date,
                    "author": self.last.author,
                    "email": self.last.email,
                    "merged": self.last.merged.date if self.last.merged else None,
                }
                if self.last
                else None
            ),
        }


def _tracked(root: Path) -> str | None:
    """The tracked branch as this clone knows the server's: origin/main, else main."""
    for ref in (f"refs/remotes/origin/{TRACKED_BRANCH}", f"refs/heads/{TRACKED_BRANCH}"):
        sha = git.rev_parse(root, ref)
        if sha is not None:
            return sha
    return None


def _unmerged(root: Path, tracked: str | None, env: str, app: str) -> list[str]:
    if tracked is None:
        return []
    work = git.WorkTree(root)
    out = []
    for what, path in (
        ("release", release.release_file(env, app)),
        ("chart copy", release.chart_dir(env, app)),
        ("values", f"environments/{env}/{app}/values.yaml"),
    ):
        if work.tree_id(path) != git.tree_id(root, tracked, path):
            out.append(what)
    return out


def status(root: Path) -> list[Cell]:
    layout = release.layout(root)
    head = git.head(root)
    tracked = _tracked(root)
    envs = [e for e in layout.order if e in layout.envs]
    apps = sorted({a for e in envs for a in layout.apps.get(e, [])})
    latest: dict[tuple[str, str], history.Event] = {}
    for event in history.events(root):  # newest first: keep the first seen per (env, app)
        for change in event.apps:
            latest.setdefault((event.env, change.app), event)
    cells: list[Cell] = []
    for app in apps:
        previous: Cell | None = None
        for env in envs:
            pins = release.read(root, env, app)
            if pins is None:
                continue
            if pins.follows:
                resolved: str | None = head
                tree = git.tree_id(root, head, release.source_chart(app))
                pins = Pins(pins.repository, pins.tag, pins.digest, "", tree or "")
            else:
                resolved = pins.chart_commit if git.rev_parse(root, pins.chart_commit) else None
            cell = Cell(env, app, pins, resolved, last=latest.get((env, app)))
            cell.unmerged = _unmerged(root, tracked, env, app)
            if previous is not None:
                cell.behind_of = previous.env
                cell.image_differs = previous.pins.image != pins.image
                cell.chart_differs = previous.pins.chart_tree != pins.chart_tree
                if cell.chart_differs and resolved and previous.resolved:
                    cell.chart_behind = git.count_commits(root, resolved, previous.resolved, f"apps/{app}")
                elif not cell.chart_differs:
                    cell.chart_behind = 0
            cells.append(cell)
            previous = cell
    return cells


def render_text(cells: list[Cell]) -> str:
    if not cells:
        return "no app has a release in any environment\n"
    rows = []
    for c in cells:
        chart = f"{TRACKED_BRANCH} ({(c.resolved or '?')[:12]})" if c.pins.follows else f"{c.pins.chart_commit[:12]}"
        last = f"{c.last.kind} {c.last.date} by {c.last.author} ({c.last.sha[:12]})" if c.last else "-"
        rows.append([c.app, c.env, c.pins.short_image(), chart, c.state(), last])
    return history.table(rows, ["APP", "ENV", "IMAGE", "CHART", "PENDING", "LAST CHANGE"])
