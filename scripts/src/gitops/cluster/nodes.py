"""Fake nodes for kwok: registered Node objects that kwok keeps Ready and whose pods it marks Running."""

from __future__ import annotations

from pathlib import Path

FAKE_NODE_ANNOTATION = "kwok.x-k8s.io/node"


def node_manifest(name: str, zone: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {FAKE_NODE_ANNOTATION: "fake"},
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "topology.kubernetes.io/zone": zone,
                "type": "kwok",
            },
        },
        # What a real node reports, ephemeral storage included: the scheduler fits a pod that requests some (as the
        # app charts do) only on a node that advertises it.
        "status": {
            "allocatable": {"cpu": "32", "memory": "256Gi", "ephemeral-storage": "100Gi", "pods": "110"},
            "capacity": {"cpu": "32", "memory": "256Gi", "ephemeral-storage": "100Gi", "pods": "110"},
        },
    }


def create_fake_nodes(kubeconfig: Path, count: int = 2) -> list[str]:
    from kubernetes import client, config

    api = client.CoreV1Api(config.new_client_from_config(str(kubeconfig)))
    names = []
    for i in range(count):
        name = f"kwok-node-{i}"
        api.create_node(node_manifest(name, zone=f"zone-{i % 2}"))
        # The apiserver taints every new Node not-ready (TaintNodesByCondition); node lifecycle would lift it once
        # kwok reports Ready, but that controller is off (kwok's heartbeats are too sparse for it), so lift it here.
        api.patch_node(name, {"spec": {"taints": None}})
        names.append(name)
    return names
