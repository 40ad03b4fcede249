"""helm's failures as findings: a schema violation pinned to the overlay line that caused it, a template error to
the template and line, everything else squashed to one line naming the chart."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from gitops import yamlio
from gitops.findings import Finding

if TYPE_CHECKING:
    from gitops.model import Repo
    from gitops.render.helm import HelmJob

SCHEMA_ERROR = "values don't meet the specifications of the schema"
# helm reports schema problems as lines such as "- at '/autoscaling/maxReplicas': maximum: got 500, want 100".
SCHEMA_LINE = re.compile(r"^(\s*)-\s*at\s+'([^']*)':\s*(.+)$", re.M)
ADDITIONAL = re.compile(r"additional properties? ((?:'[^']+'(?:, )?)+) not allowed")
TEMPLATE_LOC = re.compile(r"(?:^|[\s(])[\w.-]+/(templates/[^\s:()]+)(?::(\d+))?", re.M)


def helm_failure(repo: Repo, job: HelmJob, output: str, *, check: str) -> list[Finding]:
    """A failed `helm template` as findings: schema violations pinned to the overlay line that caused them."""
    base = {"env": job.env, "app": job.app}
    if SCHEMA_ERROR in output:
        return schema_findings(repo, job, output)
    m = TEMPLATE_LOC.search(output)
    file = f"{job.chart}/{m.group(1)}" if m else job.chart
    line = int(m.group(2)) if m and m.group(2) else None
    return [Finding(check, f"helm template at {job.where}: {squash(output)}", file=file, line=line, **base)]


def schema_findings(repo: Repo, job: HelmJob, output: str) -> list[Finding]:
    findings = []
    seen = set()
    schema = _json_or_none((job.files[0] / "values.schema.json").read_text()) if job.files else None
    matches = SCHEMA_LINE.findall(output)
    for n, (indent, pointer, message) in enumerate(matches):
        # "validation failed" only announces the nested lines that follow it.
        nested = n + 1 < len(matches) and len(matches[n + 1][0]) > len(indent)
        if message.strip() == "validation failed" and nested:
            continue
        key = (pointer, message.strip())
        if key in seen:
            continue
        seen.add(key)
        extra = ADDITIONAL.search(message)
        at = f"{pointer.rstrip('/')}/{extra.group(1).split(',')[0].strip().strip(chr(39))}" if extra else pointer
        file, line = locate_value(repo, job, at)
        findings.append(
            Finding(
                "values-schema",
                f"values {pointer or '/'}: {message.strip()}{_expected(schema, pointer)}"
                f" (schema {job.chart}/values.schema.json)",
                env=job.env,
                app=job.app,
                file=file,
                line=line,
            )
        )
    if not findings:
        findings.append(
            Finding(
                "values-schema",
                squash(output),
                env=job.env,
                app=job.app,
                file=f"{job.chart}/values.schema.json",
            )
        )
    return findings


def _expected(schema: Any, pointer: str) -> str:
    """The schema's own description of the value, which says what was expected (helm's messages often do not)."""
    node = schema
    for part in [p for p in pointer.strip("/").split("/") if p]:
        props = node.get("properties") if isinstance(node, dict) else None
        if isinstance(props, dict) and part in props:
            node = props[part]
        elif isinstance(node, dict) and isinstance(node.get("items"), dict) and part.isdigit():
            node = node["items"]
        else:
            return ""
    description = node.get("description") if isinstance(node, dict) and pointer.strip("/") else None
    return f"; expected: {description}" if description else ""


def locate_value(repo: Repo, job: HelmJob, pointer: str) -> tuple[str, int | None]:
    """The file (and line) that set the value at a JSON pointer: the last overlay that has it, else the chart."""
    parts = [p.replace("~1", "/").replace("~0", "~") for p in pointer.strip("/").split("/") if p]
    keys: list[str | int] = [int(p) if p.isdigit() else p for p in parts]
    # valuesObject wins over the value files: a value it sets came from the release (the generator's file).
    if job.extra_values and keys and _has(_json_or_none(job.extra_values), keys[:1]):
        if job.locate is not None:
            return job.locate(keys)
        ae = repo.app_envs.get((job.env, job.app))
        line = ae.release.line(*[str(k) for k in keys]) if ae and ae.release else None
        return job.application.params_file, line
    for vf in reversed(job.value_files):
        text = vf.snapshot.read(vf.path)
        try:
            data = yamlio.load(text or "", vf.path)
        except yamlio.YamlError:
            continue
        node, found = data, True
        for k in keys:
            in_map = isinstance(node, dict) and k in node
            if in_map or (isinstance(node, list) and isinstance(k, int) and k < len(node)):
                node = node[k]
            else:
                found = False
                break
        if found and keys:
            return vf.path, yamlio.line_of(data, *keys)
        # An unknown key is reported at its parent: find the deepest existing prefix in this overlay.
        for n in range(len(keys) - 1, 0, -1):
            if _has(data, keys[:n]):
                return vf.path, yamlio.line_of(data, *keys[:n])
    return f"{job.chart}/values.yaml", None


def _json_or_none(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _has(data: Any, keys: list) -> bool:
    node = data
    for k in keys:
        if isinstance(node, dict) and k in node:
            node = node[k]
        else:
            return False
    return True


def squash(output: str) -> str:
    """helm's multi-line error as one line, without its boilerplate."""
    drop = ("Use --debug flag", "chart(s) linted", "==> Linting")
    lines = [ln.strip() for ln in output.strip().splitlines() if ln.strip() and not ln.strip().startswith(drop)]
    return " ".join(ln.removeprefix("Error: ") for ln in lines)[:2000]
