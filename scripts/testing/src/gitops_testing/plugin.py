"""pytest plugin: a real control plane for the whole test run, always torn down.

Enabled from the repo's root conftest.py. A missing binary fails the fixture with "run `make tools`"; it never
skips, because a skipped security test reads like a passed one.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gitops.cluster import LocalControlPlane


@pytest.fixture(scope="session")
def kube_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalControlPlane]:
    cp = LocalControlPlane(tmp_path_factory.mktemp("control-plane"))
    cp.start()
    try:
        yield cp
    finally:
        cp.stop()


@pytest.fixture(scope="session")
def kube_admin_kubeconfig(kube_cluster: LocalControlPlane) -> Path:
    return kube_cluster.kubeconfig


def mint_token(kubeconfig: Path, namespace: str, service_account: str, seconds: int = 3600) -> str:
    """A bound ServiceAccount token from the TokenRequest API, as the kubelet would project into a pod."""
    from kubernetes import client, config

    api = client.CoreV1Api(config.new_client_from_config(str(kubeconfig)))
    req = client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=seconds))
    return api.create_namespaced_service_account_token(service_account, namespace, req).status.token
