"""Shared by every test suite in the repository: the real control plane and the pinned tools (the
`gitops_testing.plugin`), and the `toolchain` marker that `make check` leaves out."""

from __future__ import annotations

import pytest

pytest_plugins = ["gitops_testing.plugin"]

# A test that asks for one of these needs the pinned toolchain (`make tools`) or a control plane started from it.
TOOLCHAIN_FIXTURES = frozenset(
    {
        "kube_cluster",
        "kube_admin_kubeconfig",
        "control_plane",
        "platform_admission",
        "pinned_tool",
        "helm",
        "argocd",
        "upstream_chart_cache",
    }
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Marked from the fixtures a test uses, so a new test needs no marker of its own. A test that reaches a tool
    # some other way carries `pytest.mark.toolchain` itself; `make check` hides the toolchain, so one that does not
    # fails there with "run make tools" instead of passing by luck.
    for item in items:
        if TOOLCHAIN_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.toolchain)
