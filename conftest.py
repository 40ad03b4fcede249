"""Shared by every test suite in the repository: the real control plane and the pinned tools (the
`gitops_testing.plugin`), and the `toolchain` marker that `make check` leaves out."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gitops.checks.cache import ENV_VAR as VALIDATE_CACHE

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


@pytest.fixture(scope="session", autouse=True)
def _validate_cache_of_the_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """`gitops validate` keeps results between runs; the tests never read the developer's (or leave theirs in it).
    The CLI run as a subprocess inherits it. The checks' own tests start each with an empty one of their own."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(VALIDATE_CACHE, str(tmp_path_factory.mktemp("validate-cache")))
        yield
