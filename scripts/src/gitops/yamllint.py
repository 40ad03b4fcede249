"""yamllint, as a library, on the repo's YAML with the repo's ``.yamllint`` (the same file pre-commit uses).

Warnings count as problems, like `yamllint --strict`: a warning nobody has to fix is a warning nobody reads.
"""

from __future__ import annotations

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
    conf = config(snapshot.root)
    findings = []
    for path in yaml_files(snapshot, conf, under):
        text = snapshot.read(path)
        if text is None:
            continue
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
