"""`gitops promote --github-event`: the promote workflow's only input is the event GitHub delivered. A dev-healthy
dispatch from Argo CD promotes its app as of the revision it reported, and only if that revision pins the image it
reported; a workflow_dispatch promotes `inputs.app` (or every app) as of HEAD. Refusals leave the repository as it
was. The payload here has the shape clusters/aks-dev/argocd-values.yaml's template produces; `make e2e` sends the
real one from the real Argo CD through the same command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gitops.errors import GitopsError
from gitops.release import workflow_event

APP = "pod-details"


@pytest.fixture(autouse=True)
def _needs_helm(helm):
    """Promotions validate prod, which renders with the pinned helm (fails with `make tools` when missing)."""


def dispatch(repo, revision: str, **payload_changes) -> dict:
    """What GitHub puts in $GITHUB_EVENT_PATH for Argo CD's `dev-healthy` dispatch, for dev's release at
    ``revision``."""
    pins = repo.pins("dev", rev=revision)
    payload = {
        "app": APP,
        "application": f"{APP}-dev",
        "environment": "dev",
        "image": {"repository": pins.repository, "tag": pins.tag, "digest": pins.digest},
        "revisions": [revision, revision],
    }
    payload.update(payload_changes)
    return {"action": "dev-healthy", "branch": "main", "client_payload": payload, "repository": {"name": "r"}}


def write(tmp_path: Path, event: dict | str) -> Path:
    path = tmp_path / "event.json"
    path.write_text(event if isinstance(event, str) else json.dumps(event))
    return path


def test_a_dispatch_promotes_what_dev_reported_healthy(repo, tmp_path):
    healthy = repo.bump("0.2.0")
    repo.bump("0.3.0")  # newer than what Argo CD reported: not proven in dev yet
    event = write(tmp_path, dispatch(repo, healthy))

    repo.ok("promote", "--from", "dev", "--to", "prod", "--github-event", str(event))

    prod = repo.pins("prod")
    assert (prod.tag, prod.digest) == ("0.2.0", repo.pins("dev", rev=healthy).digest)
    assert repo.trailers("Source-Commit") == [healthy]
    assert repo.trailers("App") == [APP]


def test_a_workflow_dispatch_promotes_its_input_or_every_app_at_head(repo, tmp_path):
    repo.bump("0.2.0")
    repo.ok("promote", "--from", "dev", "--to", "prod", "--github-event", str(write(tmp_path, {"inputs": {"app": ""}})))
    assert repo.pins("prod").tag == "0.2.0"
    assert repo.trailers("Source-Commit") == [repo.git("rev-parse", "HEAD~1").strip()]

    assert workflow_event.read(write(tmp_path, {"inputs": {"app": APP}}), "dev").apps == [APP]
    assert workflow_event.read(write(tmp_path, {"inputs": {}}), "dev").apps == []


def test_a_dispatch_whose_image_is_not_what_its_revision_pins_is_refused(repo, tmp_path):
    reported = repo.bump("0.2.0")
    wrong = {"repository": "docker.io/azurelaboratory/pod-details", "tag": "0.9.9", "digest": ""}
    event = write(tmp_path, dispatch(repo, reported, image=wrong))
    before = repo.state()

    proc = repo.gitops("promote", "--from", "dev", "--to", "prod", "--github-event", str(event))

    assert proc.returncode == 1
    assert "Argo CD reported docker.io/azurelaboratory/pod-details:0.9.9 healthy" in proc.stderr
    assert f"at {reported[:12]} pins docker.io/azurelaboratory/pod-details:0.2.0@sha256:" in proc.stderr
    assert repo.state() == before


def test_a_dispatch_naming_a_commit_outside_main_is_refused(repo, tmp_path):
    repo.bump("0.2.0")
    event = dispatch(repo, repo.head())
    event["client_payload"]["revisions"] = ["0" * 40] * 2
    before = repo.state()

    proc = repo.gitops("promote", "--from", "dev", "--to", "prod", "--github-event", str(write(tmp_path, event)))

    assert proc.returncode == 1 and "is not a commit in HEAD's history" in proc.stderr
    assert repo.state() == before


def test_the_event_cannot_be_combined_with_app_or_source_commit(repo, tmp_path):
    event = write(tmp_path, {"inputs": {"app": ""}})
    proc = repo.gitops("promote", "--from", "dev", "--to", "prod", "--github-event", str(event), "--app", APP)
    assert proc.returncode == 2 and "--github-event names the app and the source commit" in proc.stderr


SHA = "a" * 40
GOOD = {
    "app": APP,
    "environment": "dev",
    "image": {"repository": "docker.io/x/y", "tag": "1", "digest": ""},
    "revisions": [SHA, SHA],
}


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ("{not json", "not a readable JSON event"),
        ([], "expected a JSON object"),
        ({"ref": "refs/heads/main"}, "neither a repository_dispatch"),
        ({"action": "prod-healthy", "client_payload": GOOD}, "promoting from dev takes 'dev-healthy'"),
        ({"client_payload": "app"}, "`client_payload` must be an object"),
        ({"client_payload": {**GOOD, "app": None}}, "`client_payload.app` is missing or not a string"),
        ({"client_payload": {**GOOD, "app": "Pod Details"}}, "expected an app name"),
        ({"client_payload": {**GOOD, "environment": "staging"}}, "Argo CD reported pod-details healthy there"),
        ({"client_payload": {**GOOD, "revisions": []}}, "must list the commits Argo CD synced"),
        ({"client_payload": {**GOOD, "revisions": ["main"]}}, "must list the commits Argo CD synced"),
        ({"client_payload": {**GOOD, "revisions": [SHA, "b" * 40]}}, "names 2 different commits"),
        ({"client_payload": {**GOOD, "image": "docker.io/x/y:1"}}, "`client_payload.image` is missing or not an obj"),
        ({"client_payload": {**GOOD, "image": {"repository": "r", "tag": ""}}}, "image.tag` must be a non-empty"),
        ({"client_payload": {**GOOD, "image": {"repository": "r", "tag": "1"}}}, "image.digest` must be a string"),
        ({"inputs": {"app": 3}}, "`inputs.app` must be a string"),
        ({"inputs": {"app": "../prod"}}, "expected an app name (a DNS label) or nothing"),
    ],
)
def test_a_malformed_event_is_refused_naming_the_file_and_field(tmp_path, event, message):
    path = write(tmp_path, event if isinstance(event, str) else json.dumps(event))
    with pytest.raises(GitopsError) as e:
        workflow_event.read(path, "dev")
    assert str(e.value).startswith(f"{path}: ")
    assert message in str(e.value)


def test_a_well_formed_dispatch_reads_as_one_app_at_its_revision(tmp_path):
    request = workflow_event.read(write(tmp_path, {"action": "dev-healthy", "client_payload": GOOD}), "dev")
    assert (request.apps, request.source_commit, request.image) == ([APP], SHA, "docker.io/x/y:1")
