"""yamllint, as a library, on the repo's YAML with the repo's ``.yamllint`` (the same file pre-commit uses).

Warnings count as problems, like `yamllint --strict`: a warning nobody has to fix is a warning nobody reads.
"""

from __future__ import annotations

import os
from concurrent.futures import Executor, Future
from pathlib import Path

from yamllint import __version__ as yamllint_version
from yamllint import linter
from yamllint.config import YamlLintConfig, YamlLintConfigError

from gitops import git
from gitops.checks.cache import Store
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


def start(
    snapshot: git.Snapshot, under: list[str] | None = None, pool: Executor | None = None, cache: Store | None = None
) -> list[Future]:
    """Lint in ``pool`` (processes: yamllint is pure Python), so it runs beside other work; see ``collect``. With a
    ``cache``, a file linted before (same path, text, configuration and yamllint) takes its findings from there."""
    conf = config(snapshot.root)
    items = [(path, text) for path in yaml_files(snapshot, conf, under) if (text := snapshot.read(path)) is not None]
    futures: list[Future] = []
    keys: dict[str, str] = {}
    if cache is not None:
        conf_path = snapshot.root / CONFIG_FILE
        setup = cache.key(yamllint_version, conf_path.read_text() if conf_path.exists() else "")
        todo = []
        for path, text in items:
            key = keys[path] = cache.key(setup, path, text)
            cached = _restore(cache.get("yamllint", key))
            if cached is not None:
                futures.append(_done(cached))
            else:
                todo.append((path, text))
        items = todo
    chunks = [items]
    if pool is None:
        pending = [_done(_lint_items(str(snapshot.root), items))]
    else:
        # Largest files first, dealt round-robin: chunks of similar cost, few enough to keep process overhead low.
        items.sort(key=lambda item: -len(item[1]))
        n = 4 * max(1, os.cpu_count() or 1)
        chunks = [items[i::n] for i in range(n) if items[i::n]]
        pending = [pool.submit(_lint_items, str(snapshot.root), chunk) for chunk in chunks]
    if cache is not None:
        for fut, chunk in zip(pending, chunks, strict=True):
            fut.add_done_callback(lambda fut, chunk=chunk: _store(cache, keys, chunk, fut))
    return futures + pending


def _done(findings: list[Finding]) -> Future:
    done: Future = Future()
    done.set_result(findings)
    return done


def _restore(entry: dict | None) -> list[Finding] | None:
    try:
        return [Finding(**f) for f in entry["findings"]] if entry is not None else None
    except (KeyError, TypeError):
        return None  # not an entry this code wrote: linted again, and rewritten


def _store(cache: Store, keys: dict[str, str], chunk: list[tuple[str, str]], fut: Future) -> None:
    """Each file's findings of a finished chunk, [] for a clean file: a clean file is a result too."""
    if fut.cancelled() or fut.exception() is not None:
        return
    by_file: dict[str, list[dict]] = {path: [] for path, _ in chunk}
    for f in fut.result():
        by_file[f.file].append(f.to_dict())
    for path, findings in by_file.items():
        cache.put("yamllint", keys[path], {"findings": findings})


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
