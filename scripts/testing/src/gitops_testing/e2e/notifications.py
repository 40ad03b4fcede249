"""Argo CD notifications as a cluster's values configure them, pointed at the e2e's GitHub API stand-in.

The argo-cd chart writes ``argocd-notifications-cm`` from the ``notifications:`` values (its template
``argocd-configs/argocd-notifications-cm.yaml``): ``context`` (``argocdUrl``, default ``https://<global.domain>``),
then every ``notifiers``, ``templates`` and ``triggers`` entry as a key of its own, and ``subscriptions``. The same
is done here from ``clusters/argocd-values.yaml`` + ``clusters/<cluster>/argocd-values.yaml`` (merged as helm merges
values files), and the real notifications controller of the pinned Argo CD reads it.

One substitution, listed in every run: each webhook service whose ``url`` is GitHub's API gets the stand-in's
address instead (``e2e.github``). Its headers, the templates and the triggers are untouched. The Secret the
services read their ``$key`` references from (``argocd-notifications-secret``, created out of band in a real cluster,
never in git) is created here with a generated value per referenced key.
"""

from __future__ import annotations

import base64
import re
import secrets
from dataclasses import dataclass, field
from urllib.parse import urlparse

import yaml

from gitops.checks.helmlint import merge_values
from gitops.errors import GitopsError

CM = "argocd-notifications-cm"
DEFAULT_SECRET = "argocd-notifications-secret"  # noqa: S105 (the Secret's name, not a value)
GITHUB_API_HOST = "api.github.com"
SECRET_REF = re.compile(r"\$([\w-]+)")  # notifications-engine's keyPattern (pkg/api/config.go)


class NotificationsConfigError(GitopsError):
    pass


@dataclass
class Notifications:
    """What the notifications controller of one cluster is given; ``enabled`` False: the chart would not run it."""

    enabled: bool
    cm: dict[str, str] = field(default_factory=dict)
    secret_name: str = DEFAULT_SECRET
    secret: dict[str, str] = field(default_factory=dict)  # generated values for the keys the services reference
    github_authorization: str | None = None  # the Authorization header the GitHub service sends, secrets filled in
    overrides: list[str] = field(default_factory=list)

    @classmethod
    def from_values(cls, values_files: list[dict], github_api_url: str, source: str) -> Notifications:
        """``source`` names the values files in messages (e.g. ``clusters/aks-dev/argocd-values.yaml``)."""
        values: dict = {}
        for v in values_files:
            values = merge_values(values, v or {})
        n = values.get("notifications") or {}
        if n.get("enabled", True) is False:
            return cls(enabled=False)
        domain = (values.get("global") or {}).get("domain") or "argocd.example.com"
        context = {"argocdUrl": n.get("argocdUrl") or f"https://{domain}", **(n.get("context") or {})}
        cm = {"context": yaml.safe_dump(context, sort_keys=False)}
        for section in ("notifiers", "templates", "triggers"):
            cm.update({k: _text(v) for k, v in (n.get(section) or {}).items()})
        if n.get("subscriptions"):
            cm["subscriptions"] = yaml.safe_dump(n["subscriptions"], sort_keys=False)
        out = cls(enabled=True, cm=cm, secret_name=((n.get("secret") or {}).get("name") or DEFAULT_SECRET))
        out._stand_in_for_github(github_api_url, source)
        return out

    def _stand_in_for_github(self, api_url: str, source: str) -> None:
        for key, text in list(self.cm.items()):
            if not key.startswith("service."):
                continue
            service = yaml.safe_load(text) or {}
            for ref in SECRET_REF.findall(text):
                self.secret.setdefault(ref, secrets.token_urlsafe(24))
            url = service.get("url") if isinstance(service, dict) else None
            if not key.startswith("service.webhook."):
                raise NotificationsConfigError(
                    f"{source}: notifications.notifiers.{key}: the e2e stands in only for GitHub's API behind a "
                    "webhook service; this service would reach outside the machine"
                )
            if urlparse(url or "").hostname != GITHUB_API_HOST:
                raise NotificationsConfigError(
                    f"{source}: notifications.notifiers.{key}: url {url!r} is not GitHub's API "
                    f"(https://{GITHUB_API_HOST}), the only service the e2e stands in for"
                )
            service["url"] = api_url
            self.cm[key] = yaml.safe_dump(service, sort_keys=False)
            self.overrides.append(f"{CM} {key} url: {url} → {api_url} (the e2e's GitHub API stand-in)")
            headers = {h.get("name", "").lower(): str(h.get("value", "")) for h in service.get("headers") or []}
            if "authorization" in headers:
                self.github_authorization = SECRET_REF.sub(lambda m: self.secret[m.group(1)], headers["authorization"])
        if self.secret:
            self.overrides.append(
                f"Secret {self.secret_name} (out of band in a real cluster): generated "
                + ", ".join(sorted(self.secret))
            )

    def secret_manifest(self, namespace: str) -> dict:
        """The Secret the services' ``$key`` references read, with the generated values."""
        return {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": self.secret_name, "namespace": namespace},
            "type": "Opaque",
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in self.secret.items()},
        }


def _text(value) -> str:
    return value if isinstance(value, str) else yaml.safe_dump(value, sort_keys=False)
