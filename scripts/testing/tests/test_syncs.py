"""The e2e's count of failed sync attempts, read from the states Argo CD's controller writes
(controller/appcontroller.go, processRequestedAppOperation): a failed attempt with retries left goes back to Running
with ``retryCount`` raised and the reason in its message, until the retry starts and replaces it."""

from __future__ import annotations

from gitops_testing.e2e.syncs import SyncAttempts

STARTED = "2026-12-02T11:57:09Z"


def _app(phase: str, message: str, retries: int = 0, started: str = STARTED) -> dict:
    op = {"phase": phase, "message": message, "startedAt": started}
    if retries:
        op["retryCount"] = retries
    return {"status": {"operationState": op}}


def test_an_operation_that_succeeds_at_once_made_no_failed_attempt():
    syncs = SyncAttempts()
    syncs.observe({"root": _app("Running", "waiting for healthy state of argoproj.io/Application/platform")})
    syncs.observe({"root": _app("Succeeded", "successfully synced (all tasks run)")})
    assert syncs.failed() == 0
    assert syncs.failures() == []


def test_a_retried_attempt_counts_and_keeps_why_it_failed_after_the_retry_succeeds():
    why = "one or more objects failed to apply, reason: the server could not find the requested resource"
    syncs = SyncAttempts()
    syncs.observe({"argocd-crds": _app("Running", "applying")})
    syncs.observe({"argocd-crds": _app("Running", f"{why}. Retrying attempt #1 at 11:57AM.", retries=1)})
    syncs.observe({"argocd-crds": _app("Running", "Retrying operation. Attempt #1", retries=1)})
    syncs.observe({"argocd-crds": _app("Succeeded", "successfully synced (all tasks run)", retries=1)})
    assert syncs.failed() == 1
    lines = syncs.failures()
    assert lines[0].startswith(f"argocd-crds (operation of {STARTED}): 1 failed attempt(s): successfully synced")
    assert any(why in line for line in lines[1:]), lines


def test_an_operation_out_of_retries_counts_every_attempt_and_a_new_operation_is_counted_apart():
    syncs = SyncAttempts()
    syncs.observe({"platform": _app("Failed", "sync failed (retried 2 times).", retries=2)})
    syncs.observe({"platform": _app("Succeeded", "successfully synced", started="2026-12-02T11:58:00Z")})
    assert syncs.failed() == 3
    assert len(syncs.failures()) == 1
