"""yamllint, as a library, on the repo's YAML with the repo's ``.yamllint`` (the same file pre-commit uses).

Warnings count as problems, like `yamllint --strict`: a warning nobody has to fix is a warning nobody reads.
"""

from __future__ import annotations

import os
from concurrent.futures import Executor, Future
from pathlib import Path

from yamllint import linter
from yamllint.config import YamlLintConfig, YamlLintConfigError

from gitops import git
from gitops.errors import GitopsError
from gitops.findings import Finding

CONFIG_FILE = ".yamllint"


def config(root: Path) -> YamlLintConfig:
    path = root / CONFIG_FILE
    try:
        return YamlLintConfig(file=str(path)) if path.exists() else YamlLintConfig("extends: default")
    except YamlLintConfigError as e:
        raise GitopsError(f"{CONFIG_FILE}: {e}") from None


def yaml_files(snapshot: git.Snapshot, conf: YamlLintConfig, under: list[str] | None = None) -> list[str]:
    files = [f for f in snapshot.files() if conf.is_yaml_file(f) and not conf.is_file_ignored(f)]
    if under is not None:
        prefixes = tuple(u.rstrip("/") + "/" for u in under)
        files = [f for f in files if f.startswith(prefixes) or f in under]
    return files


def lint(snapshot: git.Snapshot, under: list[str] | None = None) -> list[Finding]:
    """Problems in every YAML file (or those under the given folders/files), in file order."""
    return collect(start(snapshot, under))


def start(snapshot: git.Snapshot, under: list[str] | None = None, pool: Executor | None = None) -> list[Future]:
    """Lint in ``pool`` (processes: yamllint is pure Python), so it runs beside other work; see ``collect``."""
    conf = config(snapshot.root)
    items = [(path, text) for path in yaml_files(snapshot, conf, under) if (text := snapshot.read(path)) is not None]
    if pool is None:
        done: Future = Future()
        done.set_result(_lint_items(str(snapshot.root), items))
        return [done]
    # Largest files first, dealt round-robin: chunks of similar cost, few enough to keep process overhead low.
    items.sort(key=lambda item: -len(item[1]))
    n = 4 * max(1, os.cpu_count() or 1)
    return [pool.submit(_lint_items, str(snapshot.root), items[i::n]) for i in range(n) if items[i::n]]


def collect(futures: list[Future]) -> list[Finding]:
    findings = [f for fut in futures for f in fut.result()]
    return sorted(findings, key=lambda f: (f.file, f.line or 0))


def _lint_items(root: str, items: list[tuple[str, str]]) -> list[Finding]:
    conf = config(Path(root))
    findings = []
    for path, text in items:
        for p in linter.run(text, conf, path):
            rule = f" ({p.rule})" if p.rule else ""
            findings.append(
                Finding("yamllint", f"{p.desc}{rule}", env=_env_of(path), app=_app_of(path), file=path, line=p.line)
            )
    return findings


def _env_of(path: str) -> str:
    parts = path.split("/")
    return parts[1] if len(parts) > 2 and parts[0] == "environments" else ""


def _app_of(path: str) -> str:
    parts = path.split("/")
    if len(parts) > 3 and parts[0] == "environments":
        return parts[2]
    if len(parts) > 2 and parts[0] == "apps":
        return parts[1]
    return ""
