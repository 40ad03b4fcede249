"""The pinned GitOps toolchain: where each tool lives in the cache, and how to find it.

Pins are in ``versions.toml`` beside this file (the one place they are kept); ``build.py`` turns them into binaries,
``charts.py`` fetches the upstream Helm charts the platform's Applications install.
"""

from __future__ import annotations

import hashlib
import os
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

PINS_FILE = Path(__file__).with_name("versions.toml")


class ToolMissing(RuntimeError):
    """A pinned tool has not been built into the cache yet."""

    def __init__(self, name: str, path: Path) -> None:
        super().__init__(f"{name} is not built (expected {path}); run `make tools` to build the pinned toolchain")
        self.name = name
        self.path = path


@dataclass(frozen=True)
class Tool:
    name: str
    module: str
    version: str
    recipe: str
    package: str
    ldflags: str = ""
    # Go build tags, space-separated (e.g. to leave out optional plugins).
    tags: str = ""
    # The upstream's own release number where its module version differs (Prometheus v0.316.0 is 3.16.0).
    release: str = ""
    version_args: tuple[str, ...] = ("--version",)

    @property
    def bare_version(self) -> str:
        return self.version.removeprefix("v")

    @property
    def source(self) -> Path | None:
        """For the `source` recipe: the directory of the small main package kept in this repository."""
        return Path(__file__).with_name(self.package) if self.recipe == "source" else None

    @property
    def build_key(self) -> str:
        """The version, and for a tool built from source kept here a digest of that source: editing it rebuilds."""
        if self.source is None:
            return self.version
        digest = hashlib.sha256()
        for path in sorted(self.source.glob("*.go")):
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
        return f"{self.version}-{digest.hexdigest()[:12]}"

    @property
    def home(self) -> Path:
        return cache_root() / self.name / self.build_key

    @property
    def binary(self) -> Path:
        return self.home / "bin" / self.name


@dataclass(frozen=True)
class CrdSource:
    name: str
    module: str
    version: str
    paths: tuple[str, ...]


@dataclass(frozen=True)
class ChartSource:
    """An upstream Helm chart as an Application names it (repoURL, chart, targetRevision), and where the same chart
    is read from here: a directory of a Go module on the proxy. ``unavailable`` says why it cannot be, when not."""

    name: str
    repo_url: str
    chart: str
    chart_version: str
    module: str
    path: str
    version: str = ""  # the module's version
    release: str = "as-is"  # how the published chart is made from the module's files (charts.RELEASES)
    digest: str = ""  # h1: hash of the chart tree as fetched (charts.tree_digest)
    unavailable: str = ""

    @property
    def home(self) -> Path:
        return cache_root() / "charts" / self.name / self.chart_version

    @property
    def chart_dir(self) -> Path:
        return self.home / self.chart

    @property
    def provenance(self) -> str:
        return f"{self.module}@{self.version}/{self.path}" if self.version else f"{self.module}/{self.path}"


def cache_root() -> Path:
    """Outside the repo, keyed by tool and version, so fresh clones (CI) reuse earlier builds."""
    explicit = os.environ.get("GITOPS_TOOLCHAIN_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "gitops-toolchain"


@cache
def pins() -> dict:
    with PINS_FILE.open("rb") as f:
        return tomllib.load(f)


def tools() -> dict[str, Tool]:
    return {
        name: Tool(name=name, **{**spec, "version_args": tuple(spec.get("version_args", ("--version",)))})
        for name, spec in pins()["tools"].items()
    }


def crd_sources() -> dict[str, CrdSource]:
    return {
        name: CrdSource(name=name, module=s["module"], version=s["version"], paths=tuple(s["paths"]))
        for name, s in pins().get("crds", {}).items()
    }


def chart_sources() -> dict[str, ChartSource]:
    return {name: ChartSource(name=name, **spec) for name, spec in pins().get("charts", {}).items()}


def tool_path(name: str) -> Path:
    """The cached binary of a pinned tool; raises ToolMissing with the command that builds it."""
    try:
        tool = tools()[name]
    except KeyError:
        raise KeyError(f"{name!r} is not a pinned tool; known: {', '.join(sorted(tools()))}") from None
    if not os.access(tool.binary, os.X_OK):
        raise ToolMissing(name, tool.binary)
    return tool.binary


def bin_dirs() -> list[Path]:
    """Directories to put on PATH so subprocesses (e.g. Argo CD's repo-server) find the pinned tools."""
    return [t.binary.parent for t in tools().values()]
