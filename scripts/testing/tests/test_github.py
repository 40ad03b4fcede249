"""The e2e's stand-in for GitHub's `POST /repos/{owner}/{repo}/dispatches`, over real HTTP: it accepts what GitHub's
published description of the call accepts (its own example included) and refuses, with GitHub's status codes, what
GitHub refuses. Argo CD's notifications controller talks to it in `make e2e`; this is what makes its 204 mean
something."""

from __future__ import annotations

import http.client
import json

import pytest

from gitops_testing.e2e.github import API_VERSION, GitHubAPI, full_name, request_validator

REPOSITORY = "azurelaboratory/gitops-monorepo"
AUTH = "Bearer e2e-token"
PATH = f"/repos/{REPOSITORY}/dispatches"
HEADERS = {
    "Authorization": AUTH,
    "Accept": "application/vnd.github+json",
    "X-GitHub-Api-Version": API_VERSION,
    "User-Agent": "Go-http-client/1.1",
}
DEV_HEALTHY = {
    "event_type": "dev-healthy",
    "client_payload": {
        "app": "pod-details",
        "application": "pod-details-dev",
        "environment": "dev",
        "image": {"repository": "docker.io/azurelaboratory/pod-details", "tag": "0.1.0", "digest": ""},
        "revisions": ["a" * 40, "a" * 40],
    },
}


@pytest.fixture
def github():
    api = GitHubAPI(REPOSITORY, {AUTH})
    api.start()
    try:
        yield api
    finally:
        api.stop()


def send(api: GitHubAPI, body, method: str = "POST", path: str = PATH, headers: dict | None = None):
    port = int(api.url.rsplit(":", 1)[1])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    try:
        conn.request(method, path, body=data, headers=HEADERS if headers is None else headers)
        resp = conn.getresponse()
        text = resp.read()
    finally:
        conn.close()
    return resp.status, (json.loads(text) if text else None)


def test_githubs_own_example_and_argo_cds_dispatch_are_accepted(github):
    example = {"event_type": "on-demand-test", "client_payload": {"unit": False, "integration": True}}
    assert send(github, example) == (204, None)
    assert send(github, DEV_HEALTHY, path=f"/repos/{REPOSITORY.upper()}/dispatches") == (204, None)
    received = github.dispatches("dev-healthy")
    assert [d.client_payload for d in received] == [DEV_HEALTHY["client_payload"]]
    assert received[0].headers["authorization"] == AUTH
    assert len(github.dispatches()) == 2 and github.refusals() == []


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"client_payload": {}}, "'event_type' is a required property"),
        ({"event_type": ""}, "event_type: '' should be non-empty"),
        ({"event_type": "x" * 101}, "is too long"),
        ({"event_type": 7}, "event_type: 7 is not of type 'string'"),
        ({"event_type": "e", "client_payload": [1]}, "client_payload: [1] is not of type 'object'"),
        ({"event_type": "e", "client_payload": {str(i): i for i in range(11)}}, "has too many properties"),
        ({"event_type": "e", "client_payload": {"blob": "x" * 70_000}}, "must be less than 64KB"),
        ([], "is not of type 'object'"),
    ],
)
def test_a_body_outside_the_published_schema_is_422(github, body, reason):
    status, answer = send(github, body)
    assert status == 422
    assert answer["message"].startswith("Invalid request.")
    assert reason in answer["message"]
    assert github.dispatches() == []
    assert [r.status for r in github.refusals()] == [422]


@pytest.mark.parametrize(
    ("change", "status", "message"),
    [
        ({"path": "/repos/someone/else/dispatches"}, 404, "Not Found"),
        ({"path": f"/repos/{REPOSITORY}/dispatches/x"}, 404, "Not Found"),
        ({"method": "PUT"}, 404, "Not Found"),
        ({"headers": {**HEADERS, "Authorization": "Bearer wrong"}}, 401, "Bad credentials"),
        ({"headers": {k: v for k, v in HEADERS.items() if k != "Authorization"}}, 401, "Bad credentials"),
        ({"headers": {k: v for k, v in HEADERS.items() if k != "User-Agent"}}, 403, "User-Agent"),
        ({"headers": {**HEADERS, "X-GitHub-Api-Version": "2099-01-01"}}, 400, "'2099-01-01' is not supported"),
        ({"body": b"{not json"}, 400, "Problems parsing JSON"),
    ],
)
def test_what_github_refuses_before_the_body_is_refused_with_its_status(github, change, status, message):
    answer = send(github, change.pop("body", DEV_HEALTHY), **change)
    assert answer[0] == status
    assert message in answer[1]["message"]
    assert github.dispatches() == []


def test_without_an_api_version_header_github_validates_as_its_default(github):
    headers = {k: v for k, v in HEADERS.items() if k != "X-GitHub-Api-Version"}
    assert send(github, DEV_HEALTHY, headers=headers) == (204, None)


def test_the_vendored_schema_is_a_valid_draft_7_schema_of_the_published_operation():
    validator = request_validator()  # check_schema raises if the vendored file is not a valid schema
    assert "repos/create-dispatch-event" in validator.schema["$comment"]
    assert validator.schema["properties"]["client_payload"]["maxProperties"] == 10


@pytest.mark.parametrize(
    ("url", "name"),
    [
        ("https://github.com/azurelaboratory/gitops-monorepo.git", REPOSITORY),
        ("https://github.com/azurelaboratory/gitops-monorepo", REPOSITORY),
        ("file:///tmp/gitops-e2e-x/git/served.git", "tmp/gitops-e2e-x"),
    ],
)
def test_a_repository_url_names_its_repository_by_its_first_two_path_segments(url, name):
    assert full_name(url) == name
