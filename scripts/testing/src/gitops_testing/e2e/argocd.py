"""Argo CD from the pinned build, run as local processes the way its own ``Procfile`` runs it for development.

One ``argocd`` binary serves every component, chosen by ``ARGOCD_BINARY_NAME``. ``ARGOCD_FAKE_IN_CLUSTER=true``
makes the in-cluster destination (``https://kubernetes.default.svc``) mean "the cluster in ``$KUBECONFIG``", so the
controllers manage the local control plane as if they ran inside it.

Started: redis, repo-server, application-controller, applicationset-controller, and the notifications controller
where the cluster's values enable notifications (``e2e.notifications``: its one service, GitHub's API, is the
e2e's stand-in). Not started: the API server and Dex (the loop reads and refreshes Applications through the Kubernetes
API), the commit server (no source hydrator).

What a cluster's Argo CD is told comes from where the real install gets it: the CRDs and ConfigMaps/Secrets of the
pinned module's ``manifests/``, the chart values in ``clusters/argocd-values.yaml`` + ``clusters/<cluster>/`` (their
``configs.cm`` and ``configs.params``, as the argo-cd chart writes them into ``argocd-cm`` and
``argocd-cmd-params-cm``), and the environment the upstream Deployments build from those ConfigMaps. Only the
reconciliation timings are shortened, and each change is listed in ``overrides``.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from gitops.cluster import free_port
from gitops.errors import GitopsError
from gitops.toolchain import bin_dirs, tool_path, tools
from gitops.yamlio import load_fast, load_manifests
from gitops_testing.e2e.kube import Kube
from gitops_testing.e2e.notifications import CM as NOTIFICATIONS_CM
from gitops_testing.e2e.notifications import Notifications
from gitops_testing.e2e.procs import Processes, base_env, http_ok, tcp_open

NAMESPACE = "argocd"
START_TIMEOUT = 120.0

# Seconds, not minutes: every step waits for a reconciliation. A refresh is also requested after each push, the way
# GitHub's webhook would; these are the fallback.
FAST_CM = {"timeout.reconciliation": "20s", "timeout.reconciliation.jitter": "0s"}
FAST_PARAMS = {
    "applicationsetcontroller.requeue.after": "5s",
    # Per-resource health in Application status (off by default since v3): what a timeout message names.
    "controller.resource.health.persist": "true",
}
REVISION_CACHE = "2s"  # how long the repo-server trusts `git ls-remote` (default: the reconciliation timeout)

COMPONENTS = {  # ARGOCD_BINARY_NAME -> the upstream workload whose container env we reproduce
    "argocd-repo-server": ("Deployment", "argocd-repo-server"),
    "argocd-application-controller": ("StatefulSet", "argocd-application-controller"),
    "argocd-applicationset-controller": ("Deployment", "argocd-applicationset-controller"),
    "argocd-notifications": ("Deployment", "argocd-notifications-controller"),
}


class ArgoCDError(GitopsError):
    pass


def redis_server() -> str:
    path = shutil.which("redis-server")
    if not path:
        raise ArgoCDError(
            "Argo CD's controller and repo-server need a redis for their caches, and redis-server is not on PATH: "
            "install redis-server (apt-get install redis-server)"
        )
    return path


def version() -> str:
    return tools()["argocd"].version


def module_manifests() -> Path:
    """``manifests/`` of the pinned Argo CD module (in the module cache since `make tools` built the binary)."""
    from gitops.toolchain.schemas import module_dir

    tool = tools()["argocd"]
    return module_dir(tool.module, tool.version) / "manifests"


def crd_docs(manifests: Path) -> list[dict]:
    return [
        load_fast((manifests / "crds" / name).read_text())
        for name in ("application-crd.yaml", "applicationset-crd.yaml", "appproject-crd.yaml")
    ]


@cache
def install_yaml(manifests: Path) -> tuple[dict, ...]:
    """install.yaml's documents, parsed once (it is 2 MB: the CRDs are in it too)."""
    return tuple(d for d in load_manifests((manifests / "install.yaml").read_text()) if d)


@dataclass
class Settings:
    """argocd-cm and argocd-cmd-params-cm as the chart would write them, plus the e2e's (listed) overrides."""

    cm: dict[str, str]
    params: dict[str, str]
    overrides: list[str] = field(default_factory=list)

    @classmethod
    def from_values(cls, values_files: list[dict]) -> Settings:
        cm: dict[str, str] = {}
        params: dict[str, str] = {}
        for values in values_files:
            configs = (values or {}).get("configs") or {}
            cm.update({k: _string(v) for k, v in (configs.get("cm") or {}).items()})
            params.update({k: _string(v) for k, v in (configs.get("params") or {}).items()})
        settings = cls(cm, params)
        for target, name, fast in ((cm, "argocd-cm", FAST_CM), (params, "argocd-cmd-params-cm", FAST_PARAMS)):
            for key, value in fast.items():
                settings.overrides.append(f"{name} {key}: {target.get(key, '(default)')} → {value}")
                target[key] = value
        return settings


def _string(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else str(value)


@dataclass
class LocalArgoCD:
    name: str  # the cluster's name, for messages
    state: Path
    kubeconfig: Path
    settings: Settings
    notifications: Notifications | None = None
    ports: dict[str, int] = field(default_factory=dict)
    procs: Processes = field(init=False)
    _workloads: dict[tuple[str, str], dict] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.procs = Processes(self.state / "logs")

    @property
    def notifying(self) -> bool:
        """Whether the chart would run the notifications controller on this cluster (``notifications.enabled``)."""
        return self.notifications is not None and self.notifications.enabled

    # -- install ---------------------------------------------------------------------------------------------------

    def install(self, kube: Kube, manifests: Path) -> None:
        """Namespace, CRDs, and install.yaml's ConfigMaps and Secrets with this cluster's settings merged in."""
        kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
        kube.apply_crds(crd_docs(manifests))
        merge = {"argocd-cm": self.settings.cm, "argocd-cmd-params-cm": self.settings.params}
        notifications = self.notifications if self.notifying else None
        if notifications:
            merge[NOTIFICATIONS_CM] = notifications.cm
        for upstream in install_yaml(manifests):
            if upstream["kind"] in ("ConfigMap", "Secret"):
                doc = {**upstream, "metadata": {**upstream["metadata"], "namespace": NAMESPACE}}
                if doc["metadata"]["name"] in merge:
                    doc["data"] = {**(doc.get("data") or {}), **merge[doc["metadata"]["name"]]}
                kube.apply(doc)
        if notifications:
            kube.apply(notifications.secret_manifest(NAMESPACE))  # created out of band in a real cluster
        # The image puts these scripts on PATH (its Dockerfile: COPY hack/... /usr/local/bin/). The repo-server runs
        # git-verify-wrapper.sh on every manifest generation, GPG or not, and reports its absence as
        # "permission denied".
        bin_dir = self.state / "bin"
        bin_dir.mkdir(parents=True, exist_ok=True)
        for script in ("git-verify-wrapper.sh", "gpg-wrapper.sh"):
            target = bin_dir / script
            target.write_bytes((manifests.parent / "hack" / script).read_bytes())
            target.chmod(0o755)
        self._workloads = {
            (d["kind"], d["metadata"]["name"]): d
            for d in install_yaml(manifests)
            if d["kind"] in ("Deployment", "StatefulSet")
        }

    # -- processes -------------------------------------------------------------------------------------------------

    def start(self) -> None:
        self.spawn()
        self.wait_ready()

    def spawn(self) -> None:
        """Start every component (redis first: the others connect to it at start-up)."""
        binary = str(tool_path("argocd"))
        redis = redis_server()
        for port in (
            "redis",
            "repo-server",
            "repo-server-metrics",
            "controller-metrics",
            "appset-metrics",
            "appset-probe",
            "appset-webhook",
            "notifications-metrics",
        ):
            self.ports[port] = free_port()
        for d in ("tmp", "home", "helm", "tls", "ssh", "gpg/keys", "gpg/source", "plugins", "redis"):
            (self.state / d).mkdir(parents=True, exist_ok=True)
        (self.state / "gpg/keys").chmod(0o700)

        self._spawn_redis(redis)
        self.procs.wait_until("redis", lambda: _redis_ping(self.ports["redis"]), START_TIMEOUT, self._log("redis"))
        self._spawn_repo_server(binary)
        self._spawn_controller(binary)
        self._spawn_appset_controller(binary)
        if self.notifying:
            self._spawn_notifications_controller(binary)

    def wait_ready(self) -> None:
        """Return once every component answers its health check; fail at once, with its log, if one exits."""
        for what, url in (
            ("argocd-repo-server", f"http://127.0.0.1:{self.ports['repo-server-metrics']}/healthz?full=true"),
            ("argocd-application-controller", f"http://127.0.0.1:{self.ports['controller-metrics']}/healthz"),
            # No health checks are registered on its probe address (upstream runs it without probes): its metrics
            # endpoint answers once the manager has started.
            ("argocd-applicationset-controller", f"http://127.0.0.1:{self.ports['appset-metrics']}/metrics"),
            # Nor on the notifications controller: it serves only metrics (on every address, as upstream).
            *(
                [("argocd-notifications", f"http://127.0.0.1:{self.ports['notifications-metrics']}/metrics")]
                if self.notifying
                else []
            ),
        ):
            self.procs.wait_until(f"{what} ({self.name})", lambda url=url: http_ok(url), START_TIMEOUT, self._log(what))

    def stop(self) -> None:
        self.procs.stop()

    def check_alive(self) -> None:
        self.procs.check_alive()

    def _log(self, name: str) -> Path:
        return self.procs.log_dir / f"{name}.log"

    def _upstream_env(self, component: str) -> dict[str, str]:
        """The env the upstream workload builds from argocd-cm / argocd-cmd-params-cm (keys present only)."""
        kind, name = COMPONENTS[component]
        workload = self._workloads[(kind, name)]
        data = {"argocd-cm": self.settings.cm, "argocd-cmd-params-cm": self.settings.params}
        env: dict[str, str] = {}
        for container in workload["spec"]["template"]["spec"]["containers"]:
            for var in container.get("env") or []:
                ref = (var.get("valueFrom") or {}).get("configMapKeyRef")
                if ref and ref.get("name") in data and ref.get("key") in data[ref["name"]]:
                    env[var["name"]] = data[ref["name"]][ref["key"]]
                elif "value" in var and not str(var["value"]).startswith("/"):  # container paths are remapped below
                    env[var["name"]] = str(var["value"])
        return env

    def _env(self, component: str) -> dict[str, str]:
        s = self.state
        path = os.pathsep.join([str(s / "bin"), *map(str, bin_dirs()), os.environ.get("PATH", "/usr/bin:/bin")])
        return base_env(
            **self._upstream_env(component),
            PATH=path,  # the repo-server runs the pinned helm from here
            HOME=str(s / "home"),
            TMPDIR=str(s / "tmp"),  # the repo-server checks repositories out under the temp dir
            HELM_CACHE_HOME=str(s / "helm"),
            HELM_CONFIG_HOME=str(s / "helm"),
            HELM_DATA_HOME=str(s / "helm"),
            KUBECACHEDIR=str(s / "kubecache"),
            KUBECONFIG=str(self.kubeconfig),
            NAMESPACE=NAMESPACE,
            ARGOCD_BINARY_NAME=component,
            ARGOCD_FAKE_IN_CLUSTER="true",
            ARGOCD_TLS_DATA_PATH=str(s / "tls"),
            ARGOCD_SSH_DATA_PATH=str(s / "ssh"),
            ARGOCD_GNUPGHOME=str(s / "gpg/keys"),
            ARGOCD_GPG_DATA_PATH=str(s / "gpg/source"),
            ARGOCD_GPG_ENABLED="false",
            ARGOCD_PLUGINSOCKFILEPATH=str(s / "plugins"),
            GIT_CONFIG_NOSYSTEM="1",
            ARGOCD_ASK_PASS_SOCK=str(s / "askpass.sock"),  # default /tmp/reposerver-ask-pass.sock: one per machine
        )

    def _spawn_redis(self, redis: str) -> None:
        argv = [
            redis, "--port", str(self.ports["redis"]), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", str(self.state / "redis"), "--loglevel", "warning",
        ]  # fmt: skip
        self.procs.spawn("redis", argv, base_env())

    def _spawn_repo_server(self, binary: str) -> None:
        p = self.ports
        argv = [
            binary,
            "--address", "127.0.0.1",
            "--port", str(p["repo-server"]),
            "--metrics-address", "127.0.0.1",
            "--metrics-port", str(p["repo-server-metrics"]),
            "--redis", f"127.0.0.1:{p['redis']}",
            "--disable-tls",
            "--client-ca-path", "",  # its default (a mounted Secret's path) is refused together with --disable-tls
            "--revision-cache-expiration", REVISION_CACHE,
        ]  # fmt: skip
        self.procs.spawn("argocd-repo-server", argv, self._env("argocd-repo-server"), cwd=self.state)

    def _spawn_controller(self, binary: str) -> None:
        p = self.ports
        argv = [
            binary,
            "--namespace", NAMESPACE,
            "--redis", f"127.0.0.1:{p['redis']}",
            "--repo-server", f"127.0.0.1:{p['repo-server']}",
            "--repo-server-plaintext",
            "--metrics-port", str(p["controller-metrics"]),
        ]  # fmt: skip
        env = self._env("argocd-application-controller")
        self.procs.spawn("argocd-application-controller", argv, env, cwd=self.state)

    def _spawn_appset_controller(self, binary: str) -> None:
        p = self.ports
        argv = [
            binary,
            "--namespace", NAMESPACE,
            "--argocd-repo-server", f"127.0.0.1:{p['repo-server']}",
            "--repo-server-plaintext",
            "--metrics-addr", f"127.0.0.1:{p['appset-metrics']}",
            "--probe-addr", f"127.0.0.1:{p['appset-probe']}",
            "--webhook-addr", f"127.0.0.1:{p['appset-webhook']}",
        ]  # fmt: skip
        env = self._env("argocd-applicationset-controller")
        self.procs.spawn("argocd-applicationset-controller", argv, env, cwd=self.state)

    def _spawn_notifications_controller(self, binary: str) -> None:
        assert self.notifications is not None
        p = self.ports
        argv = [
            binary,
            "--namespace", NAMESPACE,
            "--argocd-repo-server", f"127.0.0.1:{p['repo-server']}",
            "--argocd-repo-server-plaintext",
            "--metrics-port", str(p["notifications-metrics"]),
            "--secret-name", self.notifications.secret_name,
        ]  # fmt: skip
        env = self._env("argocd-notifications")
        self.procs.spawn("argocd-notifications", argv, env, cwd=self.state)

    def log_tails(self, lines: int = 15) -> str:
        return "\n".join(f"--- {c.name} ({c.log}) ---\n{c.tail(lines)}" for c in self.procs.children)

    def controller_errors(self, limit: int = 20) -> list[str]:
        """The application controller's last warnings and errors (it logs JSON), one line each, for a report."""
        found = []
        for line in self._log("argocd-application-controller").read_text(errors="replace").splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if entry.get("level") in ("warning", "error"):
                who = entry.get("application") or entry.get("app-qualified-name") or ""
                detail = f"{entry.get('msg', '')} {entry.get('error', '')}".strip()
                found.append(f"{entry.get('time', '')} {entry['level']} {who}: {detail}"[:400])
        return found[-limit:]


def _redis_ping(port: int) -> bool:
    if not tcp_open(port):
        return False
    with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
        s.sendall(b"PING\r\n")
        return s.recv(16).startswith(b"+PONG")
