"""The GitHub Actions event that started the promote workflow, read as what `gitops promote` should promote.

The workflow (`.github/workflows/promote.yaml`) hands over ``$GITHUB_EVENT_PATH`` untouched, so how a payload becomes
a promotion is decided here, where it is tested, and not in expressions of the workflow. Two events start it:

- ``repository_dispatch`` of type ``<source>-healthy``, sent by Argo CD notifications once an image runs Synced and
  Healthy in the source environment (``template.dev-healthy`` in ``clusters/aks-dev/argocd-values.yaml``). Its
  ``client_payload`` names the app, the environment, the image and the revisions Argo CD synced. The app is promoted as
  of that revision, and only if the source's release at that revision is the image Argo CD reported: what Argo CD
  saw healthy is exactly what is promoted.
- ``workflow_dispatch`` (by hand): ``inputs.app``, empty for every app, promoted as of HEAD.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gitops import git
from gitops.errors import GitopsError
from gitops.model import release

APP_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


@dataclass(frozen=True)
class Request:
    """What an event asks for: which apps, as of which commit, and (from a dispatch) the image Argo CD reported."""

    apps: list[str]
    source_commit: str | None  # None: HEAD
    image: str | None  # `repo:tag@digest` as Argo CD ran it (dispatch only)
    origin: str  # for messages: which event, from where


def read(path: Path, source: str) -> Request:
    """The promotion an event file asks for; an error names the file and the field that is missing or malformed."""
    try:
        event = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise GitopsError(f"{path}: not a readable JSON event ({e})") from None
    if not isinstance(event, dict):
        raise GitopsError(f"{path}: expected a JSON object (a GitHub Actions event payload)")
    if "client_payload" in event:
        return _dispatch(event, path, source)
    if "inputs" in event:
        return _by_hand(event, path)
    raise GitopsError(
        f"{path}: neither a repository_dispatch (`client_payload`) nor a workflow_dispatch (`inputs`) event"
    )


def _by_hand(event: dict, path: Path) -> Request:
    inputs = event.get("inputs")
    app = (inputs or {}).get("app", "") if isinstance(inputs, dict) else None
    if not isinstance(app, str):
        raise GitopsError(f"{path}: `inputs.app` must be a string (empty for every app)")
    app = app.strip()
    if app and not APP_RE.match(app):
        raise GitopsError(f"{path}: `inputs.app` is {app!r}; expected an app name (a DNS label) or nothing")
    return Request([app] if app else [], None, None, "workflow_dispatch")


def _dispatch(event: dict, path: Path, source: str) -> Request:
    expected_type = f"{source}-healthy"
    action = event.get("action")
    if action is not None and action != expected_type:
        raise GitopsError(
            f"{path}: a repository_dispatch of type {action!r}; promoting from {source} takes {expected_type!r}"
        )
    payload = event["client_payload"]
    if not isinstance(payload, dict):
        raise GitopsError(f"{path}: `client_payload` must be an object")
    app = _field(payload, "app", str, path)
    if not APP_RE.match(app):
        raise GitopsError(f"{path}: `client_payload.app` is {app!r}; expected an app name (a DNS label)")
    environment = _field(payload, "environment", str, path)
    if environment != source:
        raise GitopsError(
            f"{path}: `client_payload.environment` is {environment!r}: Argo CD reported {app} healthy there, not in "
            f"{source}, which is what is being promoted"
        )
    revisions = _field(payload, "revisions", list, path)
    if not revisions or not all(isinstance(r, str) and git.SHA_RE.match(r) for r in revisions):
        raise GitopsError(f"{path}: `client_payload.revisions` must list the commits Argo CD synced (40-hex SHAs)")
    if len(set(revisions)) != 1:
        # One repository is read at one revision per Application (argo-cd#12159), so two commits mean the payload
        # is not what this repository's ApplicationSets generate.
        raise GitopsError(
            f"{path}: `client_payload.revisions` names {len(set(revisions))} different commits "
            f"({', '.join(r[:12] for r in dict.fromkeys(revisions))}); every source of an Application reads this "
            "repository at one revision, so there is no single commit to promote"
        )
    image = _field(payload, "image", dict, path)
    parts = {}
    for key in ("repository", "tag", "digest"):
        value = image.get(key)
        if not isinstance(value, str) or (key != "digest" and not value):
            what = "a string" if key == "digest" else "a non-empty string"
            raise GitopsError(f"{path}: `client_payload.image.{key}` must be {what}")
        parts[key] = value
    reported = release.Pins(parts["repository"], parts["tag"], parts["digest"]).image
    origin = f"repository_dispatch {expected_type} for {app} at {revisions[0][:12]}"
    return Request([app], revisions[0], reported, origin)


KINDS = {str: "a string", list: "a list", dict: "an object"}


def _field(payload: dict, key: str, kind: type, path: Path) -> Any:
    value = payload.get(key)
    if not isinstance(value, kind):
        raise GitopsError(f"{path}: `client_payload.{key}` is missing or not {KINDS[kind]}")
    return value


def check_reported_image(root: Path, source: str, request: Request) -> None:
    """Refuse a dispatch whose image is not what the source's release pins at the reported commit.

    A commit that is not in this clone is left to `gitops promote`, which says so."""
    if request.image is None or request.source_commit is None:
        return
    commit = git.rev_parse(root, request.source_commit)
    if commit is None:
        return
    for app in request.apps:
        pins = release.read(root, source, app, commit)
        if pins is None:
            raise GitopsError(
                f"{request.origin}: {release.release_file(source, app)} does not exist at {commit[:12]}, so Argo CD "
                "cannot have run it from there"
            )
        if pins.image != request.image:
            raise GitopsError(
                f"{request.origin}: Argo CD reported {request.image} healthy, but {release.release_file(source, app)}"
                f" at {commit[:12]} pins {pins.image}; refusing to promote an image that was not the one reported"
            )
