"""kubeconform over every rendered object in one process, each error mapped back to env, app and source file.

One run with ``-n <cores>`` workers instead of one per app: kubeconform loads each schema once and validates in
parallel, which is most of what makes `gitops validate` faster than a `helm template | kubeconform` loop. Only the
generated offline schemas are consulted (no ``default`` location), so an unknown kind is an error, never a skip.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from gitops import yamlio
from gitops.errors import GitopsError
from gitops.findings import Finding
from gitops.render.helm import Document, ResultCache
from gitops.toolchain import ToolMissing, schemas, tool_path


@dataclass
class Target:
    """A document to validate and whom to blame."""

    doc: Document
    env: str = ""
    app: str = ""


def run(targets: list[Target], workdir: Path, cache: ResultCache | None = None) -> list[Finding]:
    """Findings of every target; with a ``cache``, a document checked before (same text, same kubeconform, same
    schema set) takes its verdict from there, and only the others are given to kubeconform."""
    if not targets:
        return []
    try:
        binary = tool_path("kubeconform")
        locations = schemas.schema_locations()
    except (ToolMissing, schemas.SchemasMissing) as e:
        raise GitopsError(str(e)) from None
    found: dict[int, list[Finding]] = {id(t): [] for t in targets}
    unattributed: list[Finding] = []
    keys: dict[int, str] = {}
    todo = []
    if cache is None:
        todo = targets
    else:
        # The schema folders are named for a digest of what they are generated from (toolchain.schemas): another
        # schema set is another location, so the locations stand for the set.
        checker = cache.key(str(binary), *locations)
        verdicts: dict[str, dict | None] = {}
        for t in targets:
            key = keys[id(t)] = cache.key(checker, t.doc.text)
            if key not in verdicts:
                verdicts[key] = cache.get("kubeconform", key)
            results = (verdicts[key] or {}).get("results")
            if isinstance(results, list) and all(isinstance(res, dict) for res in results):
                found[id(t)] = [f for res in results for f in _findings(t, res)]
            else:
                todo.append(t)  # never checked, or an entry this code did not write: checked (and stored) again
    if todo:
        unattributed = _check(todo, binary, locations, workdir, found, cache, keys)
    # In the order of the targets, wherever each verdict came from: a warm run reports as a cold one does.
    return [f for t in targets for f in found[id(t)]] + unattributed


def _check(
    todo: list[Target],
    binary: Path,
    locations: list[str],
    workdir: Path,
    found: dict[int, list[Finding]],
    cache: ResultCache | None,
    keys: dict[int, str],
) -> list[Finding]:
    """kubeconform over ``todo``: each target's findings into ``found``; returns those no document can be blamed
    for. Stores each verdict in ``cache`` when every result could be blamed on its document."""
    # One file per document: kubeconform reports the file name, which maps back to exactly one target.
    by_file: dict[str, Target] = {}
    shards = _shards(todo)
    commands = []
    for n, shard in enumerate(shards):
        folder = workdir / "kubeconform" / str(n)
        folder.mkdir(parents=True, exist_ok=True)
        for i, t in enumerate(shard):
            path = folder / f"{i:06d}.yaml"
            path.write_text(t.doc.text)
            by_file[str(path)] = t
        commands.append([str(binary), "-strict", "-summary", "-output", "json", "-n", "1", *locations, str(folder)])
    env = {**os.environ, "GOGC": "off", "GOMEMLIMIT": "2GiB"}  # one short run: collecting garbage only slows it
    with ThreadPoolExecutor(max_workers=len(commands)) as pool:
        procs = list(pool.map(lambda cmd: subprocess.run(cmd, capture_output=True, text=True, env=env), commands))
    verdict: dict[int, list[dict]] = {id(t): [] for t in todo}
    unattributed: list[Finding] = []
    for proc in procs:
        try:
            report = json.loads(proc.stdout)
        except json.JSONDecodeError:
            detail = proc.stderr.strip() or proc.stdout.strip()
            raise GitopsError(f"kubeconform failed (exit {proc.returncode}): {detail}") from None
        for res in report.get("resources") or []:
            if res.get("status") in ("statusValid", "statusSkipped"):
                continue
            t = by_file.get(res.get("filename", ""))
            if t is None:
                unattributed.append(Finding("kubeconform", f"{res.get('filename')}: {res.get('msg')}"))
                continue
            found[id(t)] += _findings(t, res)
            verdict[id(t)].append({k: res.get(k) for k in ("kind", "name", "status", "msg", "validationErrors")})
    if cache is not None and not unattributed:  # a verdict is stored only when every result had its document
        for t in todo:
            cache.put("kubeconform", keys[id(t)], {"results": verdict[id(t)]})
    return unattributed


def _shards(targets: list[Target]) -> list[list[Target]]:
    """Targets split by kind, a kind never in two shards: each process compiles each schema it needs exactly once.

    Compiling a schema costs far more than validating with it (Argo CD's ApplicationSet schema: about a second),
    and kubeconform's workers (-n) each compile every schema they meet; so: one single-worker process per shard.
    """
    by_kind: dict[str, list[Target]] = {}
    for t in targets:
        by_kind.setdefault(f"{t.doc.api_version}/{t.doc.kind}", []).append(t)
    n = min(max(1, os.cpu_count() or 1), len(by_kind))
    shards: list[list[Target]] = [[] for _ in range(n)]
    weights = [0] * n
    # Greedy: biggest kinds first, each to the lightest shard; a schema to compile counts as a few dozen documents.
    for items in sorted(by_kind.values(), key=len, reverse=True):
        i = weights.index(min(weights))
        shards[i].extend(items)
        weights[i] += len(items) + SCHEMA_WEIGHT
    return [s for s in shards if s]


SCHEMA_WEIGHT = 30


def _findings(t: Target, res: dict) -> list[Finding]:
    doc = t.doc
    kind = res.get("kind") or doc.kind
    name = res.get("name") or doc.name
    base = {"env": t.env, "app": t.app, "file": doc.source, "kind": kind, "name": name}
    msg = str(res.get("msg", ""))
    if "could not find schema" in msg:
        return [
            Finding(
                "kubeconform",
                f"unknown kind {doc.api_version} {kind}: not served by the pinned Kubernetes nor any pinned CRD"
                " (toolchain/versions.toml)",
                line=doc.line,
                **base,
            )
        ]
    # validationErrors keeps only the outermost "validation failed"; msg has every leaf, one "- at '<path>': …" each.
    errors = [(path, text) for path, text in _leaves(msg)] or [
        (e.get("path", ""), e.get("msg", "")) for e in res.get("validationErrors") or []
    ]
    if not errors:
        return [Finding("kubeconform", msg, line=doc.line, **base)]
    return [Finding("kubeconform", f"{path or '/'}: {text}", line=_line(doc, path), **base) for path, text in errors]


LEAF = re.compile(r"^(\s*)- at '([^']*)': (.+)$", re.M)


def _leaves(msg: str) -> list[tuple[str, str]]:
    found = LEAF.findall(msg.replace(" - at '", "\n- at '", 1))
    out = []
    for n, (indent, path, text) in enumerate(found):
        nested = n + 1 < len(found) and len(found[n + 1][0]) > len(indent)
        if not (nested and text.strip() == "validation failed"):
            out.append((path, text.strip()))
    return out


def _line(doc: Document, pointer: str) -> int | None:
    """For plain files, the line of the offending field; helm output has no useful line to give."""
    if doc.line is None:
        return None
    try:
        data = yamlio.load(doc.text, doc.source)
    except yamlio.YamlError:
        return doc.line
    keys: list[str | int] = [int(p) if p.isdigit() else p for p in pointer.strip("/").split("/") if p]
    rel = yamlio.line_of(data, *keys)
    # doc.text starts where the document does in the file (comments included), so offsets add up.
    return doc.line + rel - 1 if rel else doc.line
