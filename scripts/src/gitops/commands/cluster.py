"""`gitops cluster`: a local etcd + kube-apiserver for development, on loopback."""

from __future__ import annotations

import os
from pathlib import Path

import click


def state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "gitops" / "cluster"


@click.group()
def cluster() -> None:
    """A local control plane (etcd + kube-apiserver) on loopback."""


@cluster.command("up")
@click.option("--workloads", is_flag=True, help="Also run controller-manager, scheduler and kwok fake nodes.")
def up(workloads: bool) -> None:
    """Start the control plane and print how to use it."""
    from gitops.cluster import LocalControlPlane, stop_from_state
    from gitops.cluster.nodes import create_fake_nodes

    data = state_dir()
    if (data / "state.json").exists():
        stop_from_state(data)
    cp = LocalControlPlane(data, workloads=workloads, attached=False)
    cp.start()
    if workloads:
        create_fake_nodes(cp.kubeconfig)
    click.echo(f"control plane up at {cp.server}")
    click.echo(f"  export KUBECONFIG={cp.kubeconfig}")
    click.echo("  kubectl get --raw /readyz")
    click.echo("  gitops cluster down   # stops it and removes its data")


@cluster.command("down")
def down() -> None:
    """Stop the control plane and remove its data."""
    from gitops.cluster import stop_from_state

    click.echo("stopped" if stop_from_state(state_dir()) else "no control plane was running")


@cluster.command("env")
def env() -> None:
    """Print KUBECONFIG=… for the running control plane."""
    from gitops.errors import GitopsError

    kubeconfig = state_dir() / "admin.kubeconfig"
    if not (state_dir() / "state.json").exists():
        raise GitopsError("no local control plane is running; start one with `gitops cluster up`")
    click.echo(f"KUBECONFIG={kubeconfig}")
