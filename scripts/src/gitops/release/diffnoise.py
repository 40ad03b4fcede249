"""What a reviewer does not need in a rendered diff: lines that change on every object whenever anything changes.

Comment lines (the renderer's provenance headers, helm's ``# Source:`` lines) and the labels helm stamps on every
object from the chart's version (``helm.sh/chart``, ``app.kubernetes.io/version``): a chart release that bumps its
version would otherwise bury its one real change under a changed line per object. The complete diff keeps them.
"""

from __future__ import annotations

import re

NOISE = re.compile(r"^\s*(#|(helm\.sh/chart|app\.kubernetes\.io/version):\s)")


def clean(rendered: str) -> str:
    """A rendered file without its noise lines, for a diff a reviewer reads."""
    return "".join(line for line in rendered.splitlines(keepends=True) if not NOISE.match(line))


def changed_lines(diff: str) -> int:
    """The added and removed lines of a unified diff (not its ``---``/``+++`` file headers)."""
    return sum(1 for line in diff.splitlines() if line[:1] in "+-" and not line.startswith(("+++ ", "--- ")) and line)
