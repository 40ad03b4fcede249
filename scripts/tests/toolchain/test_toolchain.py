"""The pinned toolchain: wrapper modules are generated right, and the cached binaries are the pinned versions."""

from __future__ import annotations

import re
import subprocess
import sys
import time

import pytest

from gitops.toolchain import ToolMissing, tool_path, tools
from gitops.toolchain.build import generic_gomod, kubernetes_gomod, replace_lines

KUBERNETES_GOMOD = """module k8s.io/kubernetes

go 1.26.0

require (
\tgithub.com/blang/semver/v4 v4.0.0
\tk8s.io/api v0.0.0
\tk8s.io/apiserver v0.0.0
\tk8s.io/utils v0.0.0-20260626114624-be93311217bd
)

replace (
\tk8s.io/api => ./staging/src/k8s.io/api
\tk8s.io/apiserver => ./staging/src/k8s.io/apiserver
)
"""

ARGOCD_GOMOD = """module github.com/argoproj/argo-cd/v3

go 1.27.0

require github.com/argoproj/argo-cd/gitops-engine/v3 v3.6.1 // Tagged

replace (
\tgithub.com/golang/protobuf => github.com/golang/protobuf v1.5.4
\t// Avoid CVE-2022-3064
\tgopkg.in/yaml.v2 => gopkg.in/yaml.v2 v2.4.0
)

replace github.com/argoproj/argo-cd/gitops-engine/v3 => ./gitops-engine
"""


def test_kubernetes_wrapper_replaces_every_staging_module_with_its_published_version():
    tool = tools()["kube-apiserver"]
    gomod = kubernetes_gomod(tool, KUBERNETES_GOMOD)
    minor_patch = tool.version.removeprefix("v1.")
    assert f"\tk8s.io/api => k8s.io/api v0.{minor_patch}" in gomod
    assert f"\tk8s.io/apiserver => k8s.io/apiserver v0.{minor_patch}" in gomod
    assert "k8s.io/utils =>" not in gomod  # a real pseudo-version, not a staging module
    assert "./staging" not in gomod
    assert f"require k8s.io/kubernetes {tool.version}" in gomod
    assert "\ngo 1.26.0\n" in gomod


def test_argocd_wrapper_copies_replaces_and_swaps_local_paths_for_published_modules():
    tool = tools()["argocd"]
    nested = "github.com/argoproj/argo-cd/gitops-engine/v3"
    gomod = generic_gomod(tool, ARGOCD_GOMOD, {nested: f"{nested} v3.6.1"})
    assert "github.com/golang/protobuf => github.com/golang/protobuf v1.5.4" in gomod
    assert "gopkg.in/yaml.v2 => gopkg.in/yaml.v2 v2.4.0" in gomod
    assert f"{nested} => {nested} v3.6.1" in gomod
    assert "./gitops-engine" not in gomod
    assert "\ngo 1.27.0\n" in gomod


def test_local_replaces_without_a_published_target_are_dropped():
    etcd = "module go.etcd.io/etcd/server/v3\n\ngo 1.26.0\n\nreplace go.etcd.io/etcd => ./FORBIDDEN_DEPENDENCY\n"
    assert replace_lines(etcd) == [("go.etcd.io/etcd", "./FORBIDDEN_DEPENDENCY")]
    assert "replace" not in generic_gomod(tools()["etcd"], etcd, {})


def test_a_tool_built_from_source_kept_here_is_keyed_by_that_source():
    tool = tools()["grafana-dashboard-check"]
    assert tool.source is not None and (tool.source / "main.go").is_file()
    assert re.fullmatch(rf"{re.escape(tool.version)}-[0-9a-f]{{12}}", tool.build_key), tool.build_key
    assert tool.home.name == tool.build_key  # an edited checker lands beside the old build, like a version bump
    assert tools()["helm"].build_key == tools()["helm"].version


def test_an_unbuilt_tool_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("GITOPS_TOOLCHAIN_CACHE", str(tmp_path))
    with pytest.raises(ToolMissing, match="run `make tools`"):
        tool_path("helm")


EXPECTED_VERSION_TEXT = {
    "kube-apiserver": "Kubernetes {version}",
    "kube-controller-manager": "Kubernetes {version}",
    "kube-scheduler": "Kubernetes {version}",
    "etcd": "etcd Version: {bare}",
    "helm": "{version}",
    "helm-batch": "helm-batch, helm {version}",
    "kubeconform": "{version}",
    "kwok": "{bare}",
    "argocd": "{version}",
    "actionlint": "{version}",
    "helm-docs": "{bare}",
    "prometheus": "prometheus, version {release}",
    "promtool": "promtool, version {release}",
    "grafana-dashboard-check": "grafana-foundation-sdk {version}",
}


@pytest.mark.toolchain
@pytest.mark.parametrize("name", sorted(tools()))
def test_cached_binary_reports_the_pinned_version(name):
    tool = tools()[name]
    binary = tool_path(name)
    out = subprocess.run([str(binary), *tool.version_args], capture_output=True, text=True, timeout=60)
    text = out.stdout + out.stderr
    expected = EXPECTED_VERSION_TEXT[name].format(version=tool.version, bare=tool.bare_version, release=tool.release)
    assert expected in text, f"{name} at {binary} reports {text.strip()!r}, pinned {tool.version}"


@pytest.mark.toolchain
def test_make_tools_when_cached_is_idempotent_and_lists_every_tool():
    started = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-m", "gitops", "tools", "build"], capture_output=True, text=True, timeout=120, check=True
    )
    elapsed = time.monotonic() - started
    for name, tool in tools().items():
        assert any(line.startswith(name + " ") and tool.version in line for line in out.stdout.splitlines()), out.stdout
    assert "go build" not in out.stderr, "a cached toolchain must not rebuild anything"
    print(f"cached `gitops tools build`: {elapsed:.2f}s")
