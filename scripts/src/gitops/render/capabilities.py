"""What Argo CD tells `helm template` about the destination cluster: its Kubernetes version and API versions.

Argo CD passes ``--kube-version`` (the cluster's version) and ``--api-versions`` for every resource the cluster
serves, both ``group/version`` and ``group/version/Kind`` (``util/argo.APIResourcesToStrings``). We render for the
cluster this repo describes: the pinned Kubernetes release (``versions.toml``) with every pinned CRD installed (Argo
CD, cert-manager, Gateway API, the prometheus-operator ServiceMonitor) — the same CRD set `gitops validate --live`
installs. So a chart conditional such as ``.Capabilities.APIVersions.Has "monitoring.coreos.com/v1/ServiceMonitor"``
renders as it would in a cluster that runs the platform, and what it renders is validated.
"""

from __future__ import annotations

import json
import os
import re
from functools import cache
from pathlib import Path

import yaml

from gitops.toolchain import pins, schemas

_GVK_TAIL = re.compile(r'"x-kubernetes-group-version-kind":\s*(\[[^\]]*\])\s*}\s*$', re.S)


def kube_version() -> str:
    """The pinned Kubernetes version as Argo CD passes it (``k8sversion.ParseGeneric(..).String()``: no ``v``)."""
    return pins()["tools"]["kube-apiserver"]["version"].removeprefix("v")


@cache
def api_versions() -> tuple[str, ...]:
    """Sorted ``group/version`` and ``group/version/Kind`` strings of the built-in kinds and the pinned CRDs."""
    root = schemas.ensure_schemas()
    # Derived from an immutable tree (its directory name is a hash of the pins), so computed once and kept beside it.
    memo = root.with_name(root.name + ".api-versions.json")
    if memo.exists():
        return tuple(json.loads(memo.read_text()))
    found = _collect(root)
    tmp = memo.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(found))
    os.replace(tmp, memo)
    return tuple(found)


def _collect(root: Path) -> list[str]:
    found: set[str] = set()
    for path in schemas.builtin_dir(root).glob("*.json"):
        for gvk in _builtin_gvks(path):
            gv = f"{gvk['group']}/{gvk['version']}" if gvk.get("group") else gvk["version"]
            found.update((gv, f"{gv}/{gvk['kind']}"))
    for crd_file in schemas.crd_files():
        for crd in yaml.load_all(crd_file.read_text(), Loader=yaml.CSafeLoader):
            if not crd or crd.get("kind") != "CustomResourceDefinition":
                continue
            group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
            for version in crd["spec"]["versions"]:
                if version.get("served", True):
                    found.update((f"{group}/{version['name']}", f"{group}/{version['name']}/{kind}"))
    return sorted(found)


def _builtin_gvks(path: Path) -> list[dict]:
    # The generated schemas end with their x-kubernetes-group-version-kind (keys are sorted); reading the tail
    # instead of parsing every schema keeps this to milliseconds.
    with path.open("rb") as f:
        size = f.seek(0, 2)
        f.seek(max(0, size - 1024))
        tail = f.read().decode(errors="replace")
    m = _GVK_TAIL.search(tail)
    if m:
        return json.loads(m.group(1))
    return json.loads(path.read_text()).get("x-kubernetes-group-version-kind", [])
