"""Values checked against a chart that has no ``values.schema.json``: its default ``values.yaml`` is the contract.

Helm ignores a key no template reads, so a misspelled key is silently dropped. Where a chart ships a schema, helm
itself rejects it (``values-schema``); where it does not, every key set by an Application is looked up in the chart's
defaults:

- a key the defaults do not have, under a map the defaults spell out, is reported (with the closest known keys);
- a value whose kind differs from the default's (a map, a list, a boolean, a number) is reported;
- below an empty default map (``podAnnotations: {}``), or a value the templates copy out whole (``toYaml
  .Values.resources``, ``with .Values.x`` then ``toYaml .``, ``range $k, $v := .Values.x``), any key is the chart's
  to accept: what they become is checked as Kubernetes objects (kubeconform, ``--live``), not here;
- ``global`` is always allowed (Helm's values shared with subcharts); a null deletes a default, as in Helm.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gitops import yamlio
from gitops.checks import helmlint
from gitops.findings import Finding
from gitops.model import Repo
from gitops.render.helm import HelmJob
from gitops.render.helmerrors import locate_value

CHECK = "chart-values"
REF = r"\$?\.Values\.([A-Za-z0-9_.]+)"
WHOLE = (
    re.compile(r"\b(?:toYaml|toJson|toPrettyJson)\s+\(?\s*" + REF),
    re.compile(REF + r"\s*\|\s*(?:toYaml|toJson|toPrettyJson)\b"),
    re.compile(r"\{\{-?\s*with\s+" + REF + r"\s*-?\}\}[^{]*\{\{-?\s*(?:toYaml|toJson)\s+\.\s", re.S),
    re.compile(r"\brange\s+\$\w+\s*,\s*\$\w+\s*:=\s*" + REF),
)


def passed_whole(chart_dir: Path) -> set[tuple[str, ...]]:
    """The values paths the chart's templates copy out whole, so anything below them is theirs to accept."""
    out: set[tuple[str, ...]] = set()
    templates = chart_dir / "templates"
    for path in sorted(templates.rglob("*")) if templates.is_dir() else []:
        if path.is_file():
            text = path.read_text(errors="replace")
            for pattern in WHOLE:
                out.update(tuple(m.group(1).split(".")) for m in pattern.finditer(text))
    return out


def unknown_keys(user: dict, defaults: dict, whole: set[tuple[str, ...]]) -> Iterator[tuple[list[str], str]]:
    """(path, what is wrong) for each key or value of ``user`` the chart's defaults do not account for."""
    yield from _walk(user, defaults, [], whole)


def _walk(user: dict, defaults: dict, path: list[str], whole: set[tuple[str, ...]]) -> Iterator[tuple[list, str]]:
    for key, value in user.items():
        here = [*path, str(key)]
        if tuple(here) in whole or (not path and key == "global"):
            continue
        if key not in defaults:
            known = sorted(str(k) for k in defaults)
            close = difflib.get_close_matches(str(key), known, n=3)
            hint = f"did you mean {' or '.join(close)}? " if close else ""
            where = "/".join(path) or "the top level"
            yield here, f"unknown key {key!r}: {hint}the chart's default values have, at {where}: {', '.join(known)}"
            continue
        default = defaults[key]
        expected = _kind(default)
        if value is not None and expected and _kind(value) != expected:
            shown = json.dumps(default) if not isinstance(default, dict) else "a map"
            got = _kind(value) or ("a string" if isinstance(value, str) else f"a {type(value).__name__}")
            yield here, f"expected {expected} (the chart's default is {shown}), got {got}: {json.dumps(value)}"
            continue
        if isinstance(value, dict) and isinstance(default, dict) and default:
            yield from _walk(value, default, here, whole)


def _kind(value: Any) -> str:
    """The kinds of value a typo in type shows up as; strings and nulls say nothing about what is expected."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, dict):
        return "a map"
    if isinstance(value, list):
        return "a list"
    return ""


def check_platform_job(repo: Repo, job: HelmJob, findings: list[Finding]) -> list[Finding]:
    """A platform Application's rendered chart: its values against the chart's defaults (when it has no schema),
    and helm lint's findings about the upstream's own metadata set aside."""
    return [f for f in findings if not _upstream_metadata(job, f)] + check_values(repo, job)


def _upstream_metadata(job: HelmJob, finding: Finding) -> bool:
    """`helm lint` on the chart's own Chart.yaml (cert-manager's `version: v1.21.2` "is not a valid SemVerV2"): the
    upstream's metadata, which no value of ours changes and which helm renders and installs all the same."""
    return finding.check == "helm-lint" and finding.file == f"{job.chart}/Chart.yaml"


def check_values(repo: Repo, job: HelmJob) -> list[Finding]:
    """For a chart without values.schema.json: every key the Application sets, against the chart's defaults."""
    chart_dir, values, extra = job.files  # type: ignore[misc]
    if (chart_dir / "values.schema.json").exists():
        return []  # helm validated the values against it while rendering (values-schema)
    user: dict = {}
    for path in [*values, *([extra] if extra else [])]:
        loaded = yamlio.load_fast(path.read_text())
        if isinstance(loaded, dict):
            user = helmlint.merge_values(user, loaded)
    defaults = yamlio.load_fast((chart_dir / "values.yaml").read_text()) if (chart_dir / "values.yaml").exists() else {}
    whole = passed_whole(chart_dir)
    findings = []
    for keys, message in unknown_keys(user, defaults if isinstance(defaults, dict) else {}, whole):
        pointer = "/" + "/".join(keys)
        file, line = locate_value(repo, job, pointer)
        findings.append(
            Finding(
                CHECK,
                f"values {pointer}: {message} (chart {job.chart} has no values.schema.json: checked against its "
                "values.yaml)",
                file=file,
                line=line,
            )
        )
    return findings
