"""helm command lines run by `helm-batch` (``toolchain/helm_batch``): the pinned helm's own command tree, many
command lines per process, so a hundred renders pay helm's start-up (about 50 ms of CPU each) a few times instead of
a hundred. Its replies are the helm binary's, byte for byte (``scripts/tests/toolchain/test_helm_batch.py``).

One process per thread that asks at a time, kept for the next command line; a command line that crashed helm-batch
(a panic: its reply says so) or made it exit (helm's ``log.Fatal``: no reply) is run again by the helm binary, so a
batch never answers what the binary would not.
"""

from __future__ import annotations

import base64
import json
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Result:
    """What ``subprocess.run(..., text=True)`` of the helm binary gives: exit status, stdout and stderr."""

    returncode: int
    stdout: str
    stderr: str


class HelmBatch:
    def __init__(self, batch: Path | None, helm: Path, env: dict[str, str]) -> None:
        self.batch = batch  # None: every command line by the helm binary
        self.helm = helm
        self.env = env
        self._idle: list[subprocess.Popen] = []
        self._all: list[subprocess.Popen] = []
        self._lock = threading.Lock()

    def run(self, args: list[str], cwd: Path) -> Result:
        """``helm <args>`` in ``cwd``."""
        result = self._batched(args, cwd) if self.batch is not None else None
        if result is None:
            proc = subprocess.run([str(self.helm), *args], cwd=cwd, env=self.env, capture_output=True, text=True)
            result = Result(proc.returncode, proc.stdout, proc.stderr)
        return result

    def _batched(self, args: list[str], cwd: Path) -> Result | None:
        proc = self._acquire()
        assert proc.stdin is not None and proc.stdout is not None
        try:
            proc.stdin.write(json.dumps({"dir": str(cwd), "args": args}).encode() + b"\n")
            proc.stdin.flush()
            line = proc.stdout.readline()
        except OSError:
            line = b""
        if not line:  # the process ended with this command line: it alone goes to the helm binary
            self._discard(proc)
            return None
        with self._lock:
            self._idle.append(proc)
        reply = json.loads(line)
        if reply.get("crashed"):
            return None
        return Result(int(reply["exit"]), _text(reply["stdout"]), _text(reply["stderr"]))

    def _acquire(self) -> subprocess.Popen:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        # A process lives for a hundred renders: collect garbage, but seldom (what a render leaves live is small).
        env = {**self.env, "GOGC": "off", "GOMEMLIMIT": "256MiB"}
        proc = subprocess.Popen(
            [str(self.batch)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env
        )
        with self._lock:
            self._all.append(proc)
        return proc

    def _discard(self, proc: subprocess.Popen) -> None:
        proc.kill()
        proc.wait()

    def close(self) -> None:
        """End every process (each ends by itself at the end of its input, when this one exits, too)."""
        with self._lock:
            procs, self._all, self._idle = self._all, [], []
        for proc in procs:
            if proc.stdin is not None:
                proc.stdin.close()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()


def _text(data: str | None) -> str:
    """base64 of helm's bytes → the str ``subprocess.run(text=True)`` makes of them (UTF-8, universal newlines)."""
    raw = base64.b64decode(data or "")
    return raw.decode().replace("\r\n", "\n").replace("\r", "\n")
