"""A real Kubernetes control plane as local processes, the way controller-runtime's envtest runs one.

etcd and kube-apiserver always; kube-controller-manager, kube-scheduler and kwok (fake nodes) when workloads must
actually run. Everything listens on free loopback ports and lives in one data directory, so several can run side
by side and ``stop()`` leaves nothing behind.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from gitops.cluster import pki as pkimod
from gitops.errors import GitopsError
from gitops.toolchain import tool_path

SERVICE_CIDR = "10.0.0.0/24"
ISSUER = "https://kubernetes.default.svc.cluster.local"
START_TIMEOUT = 90.0


class ControlPlaneError(GitopsError):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:
    """Kill the child if the process that started it dies (e.g. pytest killed with SIGKILL)."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def spawn_logged(
    argv: list[str],
    log: Path,
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    die_with_parent: bool = True,
) -> subprocess.Popen:
    """Start a long-running child whose output is appended to ``log``.

    Its own session: a Ctrl-C in the terminal reaches only us, and we stop the children in order (``terminate``).
    ``die_with_parent``: killed if we are, even by SIGKILL; off only for `gitops cluster up`, which outlives itself.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        return subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=cwd,
            start_new_session=True,
            preexec_fn=_die_with_parent if die_with_parent else None,
        )


@dataclass
class Process:
    name: str
    pid: int
    log: Path


@dataclass
class LocalControlPlane:
    """Start with ``start()``; ``kubeconfig`` is an admin kubeconfig. Always call ``stop()`` (or use ``with``)."""

    data_dir: Path
    workloads: bool = False
    attached: bool = True  # children die with this process; False for `gitops cluster up`
    unpullable_images: tuple[str, ...] = ()  # kwok keeps their pods in ImagePullBackOff (gitops.cluster.kwok)
    etcd_port: int = field(default_factory=free_port)
    apiserver_port: int = field(default_factory=free_port)
    kcm_port: int = field(default_factory=free_port)
    scheduler_port: int = field(default_factory=free_port)
    kwok_port: int = field(default_factory=free_port)
    processes: list[Process] = field(default_factory=list)

    @property
    def kubeconfig(self) -> Path:
        return self.data_dir / "admin.kubeconfig"

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.apiserver_port}"

    @property
    def pki_dir(self) -> Path:
        return self.data_dir / "pki"

    def __enter__(self) -> LocalControlPlane:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- lifecycle -----------------------------------------------------------------------------------------------

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        try:
            binaries = {n: tool_path(n) for n in self._binary_names()}
        except Exception as e:  # ToolMissing carries the `make tools` hint
            raise ControlPlaneError(str(e)) from None
        self.pki = pkimod.generate(self.pki_dir)
        self._write_admin_kubeconfig()
        try:
            self._spawn("etcd", [str(binaries["etcd"]), *self._etcd_args()])
            self._wait_http(f"http://127.0.0.1:{self.etcd_port}/health", "etcd", self._log("etcd"))
            self._spawn("kube-apiserver", [str(binaries["kube-apiserver"]), *self._apiserver_args()])
            self._wait_apiserver()
            if self.workloads:
                self._spawn("kube-controller-manager", [str(binaries["kube-controller-manager"]), *self._kcm_args()])
                self._spawn("kube-scheduler", [str(binaries["kube-scheduler"]), *self._scheduler_args()])
                self._spawn("kwok", [str(binaries["kwok"]), *self._kwok_args()])
                self._wait_workload_components()
        except BaseException:
            self.stop(remove=False)
            raise
        self._write_state()

    def stop(self, remove: bool = True) -> None:
        for proc in reversed(self.processes):
            terminate(proc.pid)
        self.processes.clear()
        if remove:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def _binary_names(self) -> list[str]:
        names = ["etcd", "kube-apiserver"]
        if self.workloads:
            names += ["kube-controller-manager", "kube-scheduler", "kwok"]
        return names

    # -- components ----------------------------------------------------------------------------------------------

    def _etcd_args(self) -> list[str]:
        peer = free_port()
        return [
            f"--data-dir={self.data_dir / 'etcd'}",
            f"--listen-client-urls=http://127.0.0.1:{self.etcd_port}",
            f"--advertise-client-urls=http://127.0.0.1:{self.etcd_port}",
            f"--listen-peer-urls=http://127.0.0.1:{peer}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
            f"--initial-cluster=default=http://127.0.0.1:{peer}",
            "--unsafe-no-fsync=true",  # throwaway data: durability buys nothing, fsync costs seconds
            "--log-level=warn",
        ]

    def _apiserver_args(self) -> list[str]:
        p = self.pki
        return [
            f"--etcd-servers=http://127.0.0.1:{self.etcd_port}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            "--endpoint-reconciler-type=none",  # a loopback advertise address is refused by the reconciler
            f"--secure-port={self.apiserver_port}",
            f"--tls-cert-file={p.serving_cert}",
            f"--tls-private-key-file={p.serving_key}",
            f"--client-ca-file={p.ca_cert}",
            "--authorization-mode=RBAC",
            f"--service-account-issuer={ISSUER}",
            f"--service-account-key-file={p.sa_public}",
            f"--service-account-signing-key-file={p.sa_private}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            # Pod Security and ValidatingAdmissionPolicy are on by default; listed so the intent is explicit.
            "--enable-admission-plugins=NamespaceLifecycle,ServiceAccount,PodSecurity,ValidatingAdmissionPolicy",
            "--allow-privileged=true",  # so a privileged pod is refused by Pod Security, not by this flag
            f"--cert-dir={self.data_dir / 'apiserver-certs'}",
            "--enable-priority-and-fairness=false",
            "--v=0",
        ]

    def _kcm_args(self) -> list[str]:
        p = self.pki
        return [
            f"--kubeconfig={self.kubeconfig}",
            f"--authentication-kubeconfig={self.kubeconfig}",
            f"--authorization-kubeconfig={self.kubeconfig}",
            "--leader-elect=false",
            f"--root-ca-file={p.ca_cert}",
            f"--service-account-private-key-file={p.sa_private}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            # No pod CIDRs to hand out, and kwok's heartbeats are too sparse for node lifecycle's grace period.
            # (The cloud controllers left kube-controller-manager; naming them is an error.)
            "--controllers=*,-nodeipam,-nodelifecycle",
            "--bind-address=127.0.0.1",
            f"--secure-port={self.kcm_port}",
            "--use-service-account-credentials=false",
            "--concurrent-deployment-syncs=2",
        ]

    def _scheduler_args(self) -> list[str]:
        return [
            f"--kubeconfig={self.kubeconfig}",
            f"--authentication-kubeconfig={self.kubeconfig}",
            f"--authorization-kubeconfig={self.kubeconfig}",
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
            f"--secure-port={self.scheduler_port}",
        ]

    def _kwok_args(self) -> list[str]:
        from gitops.cluster import kwok

        return [
            # The Stages: a bare kwok has none.
            f"--config={kwok.write_config(self.data_dir / 'kwok.yaml', self.unpullable_images)}",
            f"--kubeconfig={self.kubeconfig}",
            "--manage-all-nodes=false",
            "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
            "--cidr=10.244.0.0/16",
            "--node-ip=10.244.0.1",
            f"--server-address=127.0.0.1:{self.kwok_port}",
        ]

    # -- helpers -------------------------------------------------------------------------------------------------

    def _log(self, name: str) -> Path:
        return self.data_dir / "logs" / f"{name}.log"

    def _spawn(self, name: str, argv: list[str]) -> None:
        log = self._log(name)
        proc = spawn_logged(argv, log, die_with_parent=self.attached)
        self.processes.append(Process(name, proc.pid, log))

    def _check_alive(self) -> None:
        for proc in self.processes:
            try:
                pid, _ = os.waitpid(proc.pid, os.WNOHANG)
            except ChildProcessError:
                pid = proc.pid
            if pid:
                tail = "\n".join(proc.log.read_text(errors="replace").splitlines()[-20:])
                raise ControlPlaneError(f"{proc.name} exited during start-up (log {proc.log}):\n{tail}")

    def _wait_http(self, url: str, what: str, log: Path, context: ssl.SSLContext | None = None) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        last = ""
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                with urllib.request.urlopen(url, timeout=2, context=context) as resp:  # noqa: S310 (http[s] only)
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, OSError) as e:
                last = str(e)
            time.sleep(0.2)
        raise ControlPlaneError(f"{what} not ready after {START_TIMEOUT:.0f}s at {url} ({last}); log: {log}")

    def ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.pki.ca_cert))
        ctx.load_cert_chain(str(self.pki.admin_cert), str(self.pki.admin_key))
        return ctx

    def _wait_workload_components(self) -> None:
        """Their /healthz (always allowed, self-signed serving certs): a bad flag fails start-up, not a test later."""
        insecure = ssl.create_default_context()
        insecure.check_hostname = False
        insecure.verify_mode = ssl.CERT_NONE
        for name, url, ctx in (
            ("kube-controller-manager", f"https://127.0.0.1:{self.kcm_port}/healthz", insecure),
            ("kube-scheduler", f"https://127.0.0.1:{self.scheduler_port}/healthz", insecure),
            ("kwok", f"http://127.0.0.1:{self.kwok_port}/healthz", None),
        ):
            self._wait_http(url, name, self._log(name), ctx)

    def _wait_apiserver(self) -> None:
        self._wait_http(f"{self.server}/readyz", "kube-apiserver", self._log("kube-apiserver"), self.ssl_context())

    def _write_admin_kubeconfig(self) -> None:
        p = self.pki
        write_kubeconfig(
            self.kubeconfig,
            server=self.server,
            ca_file=p.ca_cert,
            user={"client-certificate": str(p.admin_cert), "client-key": str(p.admin_key)},
        )

    def token_kubeconfig(self, path: Path, token: str) -> Path:
        """A kubeconfig that authenticates with a bearer token, e.g. one minted by TokenRequest."""
        return write_kubeconfig(path, server=self.server, ca_file=self.pki.ca_cert, user={"token": token})

    def _write_state(self) -> None:
        state = {
            "kubeconfig": str(self.kubeconfig),
            "server": self.server,
            "processes": [{"name": p.name, "pid": p.pid, "log": str(p.log)} for p in self.processes],
        }
        (self.data_dir / "state.json").write_text(json.dumps(state, indent=2))


def write_kubeconfig(path: Path, *, server: str, ca_file: Path, user: dict, name: str = "gitops-local") -> Path:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": {"server": server, "certificate-authority": str(ca_file)}}],
        "users": [{"name": name, "user": user}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
        "current-context": name,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent)
    with os.fdopen(fd, "w") as f:
        yaml.safe_dump(config, f)
    os.replace(tmp, path)
    path.chmod(0o600)
    return path


def terminate(pid: int, grace: float = 5.0) -> None:
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:  # not our child (`gitops cluster down`): poll for existence
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            done = 0
        if done:
            return
        time.sleep(0.05)
    try:
        os.killpg(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass


def stop_from_state(data_dir: Path) -> bool:
    """Stop a control plane started by another process (`gitops cluster up`), then remove its data."""
    state_file = data_dir / "state.json"
    if not state_file.exists():
        shutil.rmtree(data_dir, ignore_errors=True)
        return False
    state = json.loads(state_file.read_text())
    for proc in reversed(state["processes"]):
        terminate(proc["pid"])
    shutil.rmtree(data_dir, ignore_errors=True)
    return True
