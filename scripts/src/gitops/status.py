"""`gitops status`: apps by environments — what each runs, how far each environment is behind the one before it,
and who last changed it and when (from the release history's trailers)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gitops import gitutil, history, release
from gitops.release import Pins


@dataclass
class Cell:
    env: str
    app: str
    pins: Pins
    resolved: str | None  # the exact commit the chart revision stands for (HEAD for a branch-following env)
    behind_of: str = ""  # the environment before this one in the promotion order
    behind_commits: int | None = None  # app commits the previous environment has that this one lacks
    image_differs: bool = False
    last: history.Event | None = None

    @property
    def behind(self) -> bool:
        return bool(self.behind_commits) or self.image_differs

    def state(self) -> str:
        if not self.behind_of:
            return "-"
        if self.behind_commits is None:
            return f"chart revision {self.pins.short_revision()} not in this clone"
        if not self.behind:
            return f"current with {self.behind_of}"
        parts = []
        if self.behind_commits:
            parts.append(f"{self.behind_commits} app commit(s)")
        if self.image_differs:
            parts.append("image differs")
        return f"behind {self.behind_of}: " + ", ".join(parts)

    def to_dict(self) -> dict:
        return {
            "env": self.env,
            "app": self.app,
            "image": self.pins.image,
            "repository": self.pins.repository,
            "tag": self.pins.tag,
            "digest": self.pins.digest,
            "chart_revision": self.pins.revision,
            "resolved_revision": self.resolved,
            "behind": (
                {"of": self.behind_of, "app_commits": self.behind_commits, "image_differs": self.image_differs}
                if self.behind_of
                else None
            ),
            "last_change": (
                {
                    "kind": self.last.kind,
                    "commit": self.last.sha,
                    "date": self.last.date,
                    "author": self.last.author,
                    "email": self.last.email,
                }
                if self.last
                else None
            ),
        }


def status(root: Path) -> list[Cell]:
    layout = release.layout(root)
    head = gitutil.head(root)
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
            resolved = pins.revision if pins.pinned else head
            if pins.pinned and gitutil.rev_parse(root, pins.revision) is None:
                resolved = None
            cell = Cell(env, app, pins, resolved, last=latest.get((env, app)))
            if previous is not None:
                cell.behind_of = previous.env
                cell.image_differs = previous.pins.image != pins.image
                if resolved and previous.resolved:
                    cell.behind_commits = gitutil.count_commits(root, resolved, previous.resolved, f"apps/{app}")
            cells.append(cell)
            previous = cell
    return cells


def render_text(cells: list[Cell]) -> str:
    if not cells:
        return "no app has a release in any environment\n"
    rows = []
    for c in cells:
        revision = c.pins.short_revision() if c.pins.pinned else f"{c.pins.revision} ({(c.resolved or '?')[:12]})"
        last = f"{c.last.kind} {c.last.date} by {c.last.author} ({c.last.sha[:12]})" if c.last else "-"
        rows.append([c.app, c.env, c.pins.short_image(), revision, c.state(), last])
    return history.table(rows, ["APP", "ENV", "IMAGE", "CHART REVISION", "STATE", "LAST CHANGE"])
