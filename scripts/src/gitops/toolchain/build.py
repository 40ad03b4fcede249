"""Build the pinned toolchain from the Go module proxy.

Each tool is built from a small wrapper module generated in the cache: it requires the upstream module at the
pinned version and re-declares what a consumer cannot inherit from the upstream go.mod (``replace`` directives,
and for Kubernetes the published versions of its ``k8s.io/*`` staging modules). Nothing is fetched from anywhere
but the module proxy; the go build cache makes rebuilds and version bumps incremental.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from gitops.toolchain import Tool, cache_root, tools

BUILD_ORDER = (
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "etcd",
    "helm",
    "helm-batch",
    "kubeconform",
    "kwok",
    "actionlint",
    "helm-docs",
    "prometheus",
    "promtool",
    "grafana-dashboard-check",
    "argocd",
)


class BuildFailed(RuntimeError):
    pass


def log(msg: str) -> None:
    print(f"[tools {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def go_env() -> dict[str, str]:
    env = dict(os.environ)
    # GOTOOLCHAIN=auto lets a module that needs a newer Go fetch it as a module from the proxy.
    env.setdefault("GOTOOLCHAIN", "auto")
    env.setdefault("CGO_ENABLED", "0")
    env["GOFLAGS"] = (env.get("GOFLAGS", "") + " -buildvcs=false -mod=mod").strip()
    return env


def run(cmd: list[str], cwd: Path, what: str) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=go_env(), capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-25:])
        raise BuildFailed(f"{what}: `{' '.join(cmd)}` failed in {cwd}:\n{tail}")
    return proc.stdout


def module_info(module: str, version: str, cwd: Path) -> dict:
    """Download a module via the proxy (checksums verified against the sumdb) and return `go mod download -json`."""
    out = run(["go", "mod", "download", "-json", f"{module}@{version}"], cwd, f"download {module}@{version}")
    info = json.loads(out)
    if info.get("Error"):
        raise BuildFailed(f"download {module}@{version}: {info['Error']}")
    return info


def upstream_gomod(module: str, version: str, cwd: Path) -> str:
    return Path(module_info(module, version, cwd)["GoMod"]).read_text()


def go_directive(gomod: str) -> str:
    m = re.search(r"^go (\S+)$", gomod, re.M)
    return m.group(1) if m else "1.22"


def replace_lines(gomod: str) -> list[tuple[str, str]]:
    """The upstream's replace directives as (left, right) pairs, in both the block and single-line forms."""
    pairs: list[tuple[str, str]] = []
    block = False
    for raw in gomod.splitlines():
        line = raw.split("//", 1)[0].strip()
        if line == "replace (":
            block = True
            continue
        if block and line == ")":
            block = False
            continue
        if line.startswith("replace ") and "=>" in line:
            line = line.removeprefix("replace ").strip()
        elif not block or "=>" not in line:
            continue
        left, right = (s.strip() for s in line.split("=>", 1))
        pairs.append((left, right))
    return pairs


def kubernetes_gomod(tool: Tool, upstream: str) -> str:
    minor_patch = tool.version.removeprefix("v1.")
    staging = re.findall(r"^\s+(k8s\.io/[\w.-]+) v0\.0\.0$", upstream, re.M)
    replaces = "\n".join(f"\t{m} => {m} v0.{minor_patch}" for m in staging)
    return (
        f"module gitops.local/{tool.recipe}\n\ngo {go_directive(upstream)}\n\n"
        f"require {tool.module} {tool.version}\n\nreplace (\n{replaces}\n)\n"
    )


def generic_gomod(tool: Tool, upstream: str, local_replaces: dict[str, str]) -> str:
    """Copy the upstream's replace block; a local-path replace is swapped for the published module."""
    out = []
    for left, right in replace_lines(upstream):
        if right.startswith("."):
            target = local_replaces.get(left.split()[0])
            if target is None:
                continue  # e.g. etcd's FORBIDDEN_DEPENDENCY guards and sibling-module paths: the requires suffice
            right = target
        out.append(f"\t{left} => {right}")
    block = "replace (\n" + "\n".join(out) + "\n)\n" if out else ""
    return (
        f"module gitops.local/{tool.name}\n\ngo {go_directive(upstream)}\n\n"
        f"require {tool.module} {tool.version}\n\n{block}"
    )


def argocd_local_replaces(tool: Tool, upstream: str, cwd: Path) -> dict[str, str]:
    """Argo CD (v3.3+) replaces its nested gitops-engine module with ./gitops-engine; use the published one.

    From v3.6 the nested module is tagged with the release version; before that, the proxy serves it at the
    pseudo-version of the release commit.
    """
    result = {}
    for left, right in replace_lines(upstream):
        if not right.startswith("./"):
            continue
        nested = left.split()[0]
        try:
            module_info(nested, tool.version, cwd)
            result[nested] = f"{nested} {tool.version}"
        except BuildFailed:
            origin = module_info(tool.module, tool.version, cwd).get("Origin", {})
            commit = origin.get("Hash")
            if not commit:
                raise
            info = module_info(nested, commit, cwd)
            result[nested] = f"{nested} {info['Version']}"
    return result


def ldflags(tool: Tool, build_date: str) -> str:
    flags = ["-s", "-w"]
    if tool.recipe == "kubernetes":
        major, minor = tool.bare_version.split(".")[:2]
        pkg = "k8s.io/component-base/version"
        for p in (pkg, "k8s.io/client-go/pkg/version"):
            flags += [
                f"-X {p}.gitVersion={tool.version}",
                f"-X {p}.gitMajor={major}",
                f"-X {p}.gitMinor={minor}",
                f"-X {p}.gitTreeState=clean",
                f"-X {p}.buildDate={build_date}",
            ]
    if tool.ldflags:
        flags.append(tool.ldflags.format(version=tool.version, bare_version=tool.bare_version, release=tool.release))
    return " ".join(flags)


def workdir(tool: Tool) -> Path:
    key = "kubernetes" if tool.recipe == "kubernetes" else tool.name
    return cache_root() / "_src" / f"{key}-{tool.build_key}"


def prepare_module(tool: Tool) -> Path:
    wd = workdir(tool)
    stamp = wd / ".ready"
    if stamp.exists():
        return wd
    wd.mkdir(parents=True, exist_ok=True)
    log(f"{tool.name}: resolving {tool.module}@{tool.version} via the module proxy")
    upstream = upstream_gomod(tool.module, tool.version, wd)
    if tool.recipe == "kubernetes":
        gomod = kubernetes_gomod(tool, upstream)
        imports = [t.package for t in tools().values() if t.recipe == "kubernetes" and t.version == tool.version]
    elif tool.recipe == "argocd":
        gomod = generic_gomod(tool, upstream, argocd_local_replaces(tool, upstream, wd))
        imports = [tool.package]
    elif tool.source is not None:
        # A main package of this repository on top of the pinned module: it is the wrapper module itself.
        gomod = generic_gomod(tool, upstream, {})
        imports = []
        for path in tool.source.glob("*.go"):
            shutil.copy(path, wd / path.name)
    else:
        gomod = generic_gomod(tool, upstream, {})
        imports = [tool.package]
    (wd / "go.mod").write_text(gomod)
    (wd / "go.sum").unlink(missing_ok=True)
    if imports:
        body = "\n".join(f'\t_ "{p}"' for p in imports)
        (wd / "tools.go").write_text(f"//go:build tools\n\npackage tools\n\nimport (\n{body}\n)\n")
    log(f"{tool.name}: go mod tidy (downloads dependencies on first use)")
    run(["go", "mod", "tidy"], wd, f"{tool.name}: go mod tidy")
    stamp.touch()
    return wd


def build_date(tool: Tool, wd: Path) -> str:
    """The release's own timestamp, so a rebuild yields the same binary."""
    return module_info(tool.module, tool.version, wd).get("Time", "1970-01-01T00:00:00Z")


def version_of(tool: Tool) -> str:
    proc = subprocess.run([str(tool.binary), *tool.version_args], capture_output=True, text=True, timeout=60)
    text = (proc.stdout or proc.stderr).strip().splitlines()
    return text[0].strip() if text else "?"


def build_one(tool: Tool) -> None:
    wd = prepare_module(tool)
    log(f"{tool.name}: go build {tool.package}@{tool.version} (cold builds take minutes; cached ones seconds)")
    started = time.monotonic()
    tool.binary.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=tool.home) as tmp:
        out = Path(tmp) / tool.name
        tags = ["-tags", tool.tags] if tool.tags else []
        target = "." if tool.source is not None else tool.package
        flags = ldflags(tool, build_date(tool, wd))
        cmd = ["go", "build", "-trimpath", *tags, "-ldflags", flags, "-o", str(out), target]
        run(cmd, wd, f"{tool.name}: go build")
        os.replace(out, tool.binary)  # atomic: a half-built binary is never visible
    (tool.home / "VERSION").write_text(version_of(tool) + "\n")
    log(f"{tool.name}: built in {time.monotonic() - started:.0f}s")


@contextlib.contextmanager
def exclusive() -> Iterator[None]:
    cache_root().mkdir(parents=True, exist_ok=True)
    with open(cache_root() / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def build(names: list[str] | None = None, force: bool = False) -> list[tuple[Tool, str]]:
    """Build what is missing; return (tool, reported version) for every requested tool."""
    if shutil.which("go") is None:
        raise BuildFailed("go is not on PATH: install Go 1.26+ (the toolchain builds from the Go module proxy)")
    pinned = tools()
    wanted = names or [n for n in BUILD_ORDER if n in pinned] + [n for n in pinned if n not in BUILD_ORDER]
    unknown = [n for n in wanted if n not in pinned]
    if unknown:
        raise BuildFailed(f"unknown tool(s) {', '.join(unknown)}; pinned: {', '.join(sorted(pinned))}")
    results = []
    built, started = [], time.monotonic()
    with exclusive():
        for name in wanted:
            tool = pinned[name]
            stamp = tool.home / "VERSION"
            if force or not (os.access(tool.binary, os.X_OK) and stamp.exists()):
                try:
                    build_one(tool)
                except BuildFailed as e:
                    raise BuildFailed(f"{e}\n\nretry with: .venv/bin/gitops tools build {name}") from None
                built.append(name)
            results.append((tool, stamp.read_text().strip()))
    if built:  # the figure CI's time budget is checked against
        log(f"built {len(built)} tool(s) in {time.monotonic() - started:.0f}s: {', '.join(built)}")
    return results


def build_all(names: list[str] | None = None, force: bool = False) -> tuple[list[tuple[Tool, str]], list]:
    """`make tools`: the tools, then the upstream charts (``names`` may mix both); what each one is."""
    from gitops.toolchain import chart_sources, charts

    pinned, known = tools(), chart_sources()
    unknown = [n for n in names or [] if n not in pinned and n not in known]
    if unknown:
        raise BuildFailed(
            f"unknown tool(s) or chart(s) {', '.join(unknown)}; pinned: {', '.join(sorted([*pinned, *known]))}"
        )
    tool_names = [n for n in names if n in pinned] if names else None
    chart_names = [n for n in names if n in known] if names else None
    built = build(tool_names, force) if tool_names or not names else []
    with exclusive():
        fetched = charts.fetch_all(chart_names, force) if chart_names or not names else []
    return built, fetched
