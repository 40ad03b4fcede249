"""The few Kubernetes operations the scenario needs: server-side apply, get, list, patch, events, bounded waits."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gitops.errors import GitopsError

FIELD_MANAGER = "gitops-e2e"


class WaitTimeout(GitopsError):
    pass


@dataclass
class Kube:
    kubeconfig: Path
    cache_dir: Path  # the dynamic client's discovery cache; kept in our state dir, never in /tmp

    def __post_init__(self) -> None:
        from kubernetes import config

        self.api = config.new_client_from_config(str(self.kubeconfig))
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        self._discover()
        self._missing: dict[tuple[str, str], float] = {}  # kinds found missing, and when: rediscover at most every 5s

    def _discover(self) -> None:
        """A fresh discovery. (The client's own invalidate_cache keeps the resource lists of group versions it has
        seen, so a CRD established after its group was first listed would stay unknown forever.)"""
        from kubernetes import dynamic

        cache = self.cache_dir / "discovery.json"
        cache.unlink(missing_ok=True)
        self.dyn = dynamic.DynamicClient(self.api, cache_file=str(cache))

    def resource(self, api_version: str, kind: str):
        from kubernetes.dynamic.exceptions import ResourceNotFoundError

        try:
            return self.dyn.resources.get(api_version=api_version, kind=kind)
        except ResourceNotFoundError:
            self._discover()  # a CRD installed since the last discovery
            return self.dyn.resources.get(api_version=api_version, kind=kind)

    def apply_crds(self, docs: Iterable[dict], timeout: float = 60) -> None:
        """Apply CRDs and wait until each is Established (served), so their kinds can be used at once."""
        names = [self.apply(doc)["metadata"]["name"] for doc in docs]

        def established() -> bool:
            for name in names:
                crd = self.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", name) or {}
                conditions = (crd.get("status") or {}).get("conditions") or []
                if not any(c["type"] == "Established" and c["status"] == "True" for c in conditions):
                    return False
            return True

        wait_for(f"CRDs {', '.join(names)} to be established", established, timeout, interval=0.2)
        self._discover()

    def has_kind(self, api_version: str, kind: str) -> bool:
        from kubernetes.dynamic.exceptions import ResourceNotFoundError

        key = (api_version, kind)
        if key in self._missing and time.monotonic() - self._missing[key] < 5:
            return False
        try:
            self.resource(api_version, kind)
        except ResourceNotFoundError:
            self._missing[key] = time.monotonic()
            return False
        self._missing.pop(key, None)
        return True

    def apply(self, doc: dict, namespace: str | None = None) -> dict:
        res = self.resource(doc["apiVersion"], doc["kind"])
        ns = doc["metadata"].get("namespace") or (namespace if res.namespaced else None)
        if res.namespaced and ns:
            doc = {**doc, "metadata": {**doc["metadata"], "namespace": ns}}
        out = res.server_side_apply(
            body=doc, name=doc["metadata"]["name"], namespace=ns, field_manager=FIELD_MANAGER, force_conflicts=True
        )
        return out.to_dict()

    def apply_all(self, docs: Iterable[dict], namespace: str | None = None) -> int:
        n = 0
        for doc in docs:
            if doc:
                self.apply(doc, namespace)
                n += 1
        return n

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict | None:
        from kubernetes.dynamic.exceptions import NotFoundError

        if not self.has_kind(api_version, kind):  # its CRD is not installed (yet): nothing of that kind exists
            return None
        try:
            return self.resource(api_version, kind).get(name=name, namespace=namespace).to_dict()
        except NotFoundError:
            return None

    def list(self, api_version: str, kind: str, namespace: str | None = None, **selectors: str) -> list[dict]:
        if not self.has_kind(api_version, kind):
            return []
        out = self.resource(api_version, kind).get(namespace=namespace, **selectors).to_dict()
        return out.get("items") or []

    def merge_patch(self, api_version: str, kind: str, name: str, patch: dict, namespace: str | None = None) -> dict:
        res = self.resource(api_version, kind)
        return res.patch(
            body=patch, name=name, namespace=namespace, content_type="application/merge-patch+json"
        ).to_dict()

    def patch_status(self, api_version: str, kind: str, name: str, patch: dict, namespace: str | None = None) -> None:
        status = self.resource(api_version, kind).subresources["status"]
        self.dyn.patch(status, body=patch, name=name, namespace=namespace, content_type="application/merge-patch+json")

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> None:
        from kubernetes.dynamic.exceptions import NotFoundError

        with contextlib.suppress(NotFoundError):
            self.resource(api_version, kind).delete(name=name, namespace=namespace)

    def events(self, namespace: str, name: str, limit: int = 5) -> list[str]:
        """The last events about an object, oldest first, as one line each."""
        items = self.list("v1", "Event", namespace, field_selector=f"involvedObject.name={name}")
        items.sort(key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")
        return [f"{e.get('type')} {e.get('reason')}: {e.get('message', '').strip()}" for e in items[-limit:]]


def wait_for(
    what: str,
    check: Callable[[], Any],
    timeout: float,
    describe: Callable[[], str] | None = None,
    interval: float = 0.5,
    alive: Callable[[], None] | None = None,
) -> tuple[Any, float]:
    """Poll ``check`` until it returns something truthy; return (that value, seconds taken).

    On timeout the error says what was awaited and, via ``describe``, the state it was stuck in.
    ``alive`` is called every round so a crashed component fails the wait at once, with its log.
    """
    start = time.monotonic()
    while True:
        if alive:
            alive()
        value = check()
        if value:
            return value, time.monotonic() - start
        if time.monotonic() - start > timeout:
            detail = ""
            if describe:
                try:
                    detail = "\n" + describe()
                except Exception as e:  # the description must never hide the timeout itself
                    detail = f"\n(could not describe the state: {e})"
            raise WaitTimeout(f"timed out after {timeout:.0f}s waiting for {what}{detail}")
        time.sleep(interval)
