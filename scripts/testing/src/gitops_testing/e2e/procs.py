"""Long-running helper processes (redis, Argo CD's components) that die with us and stop in reverse order.

The same rules as the local control plane: each child gets its own session (a Ctrl-C reaches only us, and we stop
them in order), PR_SET_PDEATHSIG (a SIGKILLed parent takes them along), and one log file each.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from gitops.cluster import spawn_logged, terminate
from gitops.errors import GitopsError


class ProcessError(GitopsError):
    pass


@dataclass
class Child:
    name: str
    proc: subprocess.Popen
    log: Path

    def tail(self, lines: int = 25) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


@dataclass
class Processes:
    log_dir: Path
    children: list[Child] = field(default_factory=list)

    def spawn(self, name: str, argv: list[str], env: dict[str, str], cwd: Path | None = None) -> Child:
        log = self.log_dir / f"{name}.log"
        proc = spawn_logged(argv, log, env=env, cwd=cwd)
        child = Child(name, proc, log)
        self.children.append(child)
        return child

    def check_alive(self) -> None:
        for child in self.children:
            if child.proc.poll() is not None:
                raise ProcessError(
                    f"{child.name} exited with status {child.proc.returncode} (log {child.log}):\n{child.tail()}"
                )

    def wait_until(self, what: str, ready: Callable[[], bool], timeout: float, log: Path | None = None) -> float:
        """Poll ``ready`` until it holds; fail early if any child died. Returns the seconds it took."""
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            self.check_alive()
            try:
                if ready():
                    return time.monotonic() - start
            except OSError:
                pass
            time.sleep(0.2)
        hint = f"; log: {log}" if log else ""
        raise ProcessError(f"{what} not ready after {timeout:.0f}s{hint}")

    def stop(self) -> None:
        for child in reversed(self.children):
            if child.proc.poll() is None:
                terminate(child.proc.pid)
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.proc.wait(timeout=1)
        self.children.clear()


def tcp_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 (loopback http only)
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


def base_env(**extra: str) -> dict[str, str]:
    """A minimal environment: PATH and locale from ours, nothing else leaks in (no proxies, no KUBECONFIG)."""
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "TZ")}
    env.update(extra)
    return env
