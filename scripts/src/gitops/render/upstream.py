"""Which pinned upstream chart an Application's chart source means, and where its copy is on disk.

An Application names a chart by ``repoURL``, ``chart`` and ``targetRevision``; ``[charts.*]`` in the toolchain's
``versions.toml`` pins the same three and where the chart is read from (``gitops.toolchain.charts``). A source resolves
to the cached copy, to a note when the pinned chart cannot be had here (said by name, never passed silently), or to a
problem: a chart or version nobody pinned, or a cache that is missing or holds another chart.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gitops.toolchain import chart_sources
from gitops.toolchain.charts import ChartUnusable, cached

NOT_CHECKED = "values not checked against the chart: not obtainable here"


@dataclass(frozen=True)
class Resolution:
    label: str = ""  # where the chart comes from: <module>@<version>/<path>
    revision: str = ""  # the chart version
    chart_dir: Path | None = None
    note: str = ""  # not rendered, and why
    problem: str = ""  # an error in the Application (or the cache), and what to do


def same_url(a: str, b: str) -> bool:
    """Helm repository URLs as Argo CD compares them: scheme-less OCI, trailing slashes and case aside."""

    def norm(u: str) -> str:
        return u.strip().lower().removeprefix("oci://").rstrip("/")

    return norm(a) == norm(b)


def resolve(source: dict) -> Resolution:
    repo_url = str(source.get("repoURL", ""))
    chart = str(source.get("chart", ""))
    revision = str(source.get("targetRevision", ""))
    what = f"chart {chart} {revision} from {repo_url}"
    pinned = [p for p in chart_sources().values() if p.chart == chart and same_url(p.repo_url, repo_url)]
    if not pinned:
        return Resolution(
            problem=f"{what} is not pinned in the toolchain's versions.toml: add a [charts.{chart}] with the Go "
            "module that ships it (module, version, path, digest), or say why it cannot be had (unavailable)"
        )
    match = next((p for p in pinned if p.chart_version == revision), None)
    if match is None:
        versions = ", ".join(f"{p.chart_version} ([charts.{p.name}])" for p in pinned)
        return Resolution(
            problem=f"{what}: no such version is pinned in the toolchain's versions.toml, which has {versions}; "
            "a chart is bumped in both places, the module version and digest with it"
        )
    if match.unavailable:
        return Resolution(note=f"{NOT_CHECKED} ({what}: {match.unavailable})")
    try:
        chart_dir = cached(match)
    except ChartUnusable as e:
        return Resolution(problem=str(e))
    return Resolution(label=match.provenance, revision=revision, chart_dir=chart_dir)
