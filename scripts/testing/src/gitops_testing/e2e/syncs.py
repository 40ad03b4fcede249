"""Failed sync attempts, counted from what Argo CD records in each Application's ``status.operationState``.

A sync operation that fails and has a retry policy stays the same operation (same ``startedAt``): Argo CD sets it back
to Running, increments ``retryCount`` and tries again after the back-off; one without retries left ends Failed or
Error. So an operation made ``retryCount`` failed attempts, plus one if it ended failed. Argo CD keeps the last
operation until the next one starts, and the next automated one starts only for a new revision, so observing every
Application on each poll of the scenario sees every operation.

Why an attempt failed is in the message only until the retry starts (``<why>. Retrying attempt #N at <time>.``,
for at least the back-off's first 5 s), so every distinct failure message seen is kept, not only the last one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

FAILED = ("Failed", "Error")
RETRYING = ". Retrying attempt #"  # what Argo CD appends to a failed attempt's message when it will retry


@dataclass
class Operation:
    app: str
    started: str
    retries: int = 0
    phase: str = ""
    message: str = ""
    reasons: list[str] = field(default_factory=list)  # every distinct failure message, in the order seen

    @property
    def failed_attempts(self) -> int:
        return self.retries + (1 if self.phase in FAILED else 0)


@dataclass
class SyncAttempts:
    operations: dict[tuple[str, str], Operation] = field(default_factory=dict)

    def observe(self, apps: dict[str, dict]) -> None:
        for name, app in apps.items():
            op = (app.get("status") or {}).get("operationState") or {}
            started = op.get("startedAt")
            if not started:
                continue
            seen = self.operations.setdefault((name, started), Operation(name, started))
            seen.retries = max(seen.retries, int(op.get("retryCount") or 0))
            seen.phase = op.get("phase") or seen.phase
            message = (op.get("message") or "").strip()
            if seen.phase in FAILED or op.get("retryCount"):
                seen.message = message
            failing = seen.phase in FAILED or RETRYING in message
            if failing and message and message not in seen.reasons:
                seen.reasons.append(message)

    def failed(self) -> int:
        return sum(op.failed_attempts for op in self.operations.values())

    def failures(self) -> list[str]:
        """One line per operation that failed at least once: the Application, how often, Argo CD's last message, and
        the failure messages seen before it (why each attempt failed, where a poll caught it)."""
        lines = []
        for op in sorted(self.operations.values(), key=lambda o: o.started):
            if op.failed_attempts:
                head = f"{op.app} (operation of {op.started}): {op.failed_attempts} failed attempt(s)"
                lines.append(f"{head}: {op.message[:300]}")
                lines += [f"  failed with: {reason[:500]}" for reason in op.reasons if reason != op.message]
        return lines
