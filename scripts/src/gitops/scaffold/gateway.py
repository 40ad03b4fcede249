"""The cluster's shared Gateway gains an HTTPS listener per hostname a new app or environment serves (ADR 0001)."""

from __future__ import annotations

import copy

from gitops import yamlio
from gitops.errors import GitopsError


def add_listener(text: str, file: str, name: str, host: str, secret: str) -> str:
    """The cluster's Gateway with an HTTPS listener for ``host``, shaped like the listeners it already has.

    One listener per hostname is how the platform gets a certificate per host from cert-manager (ADR 0001).
    """
    data = yamlio.round_trip().load(text)
    listeners = (data.get("spec") or {}).get("listeners") if isinstance(data, dict) else None
    if not isinstance(listeners, list):
        raise GitopsError(f"{file}: expected a Gateway with spec.listeners")
    if any(isinstance(x, dict) and x.get("hostname") == host for x in listeners):
        return text  # already served (a listener added by hand, or a retried run)
    like = next((x for x in listeners if isinstance(x, dict) and x.get("protocol") == "HTTPS"), None)
    if like is not None:
        listener = copy.deepcopy(like)
        listener["name"] = name
        listener["hostname"] = host
        refs = (listener.get("tls") or {}).get("certificateRefs") or []
        if refs:
            refs[0]["name"] = secret
    else:
        listener = yamlio.commented(
            {
                "name": name,
                "protocol": "HTTPS",
                "port": 443,
                "hostname": host,
                "tls": {"mode": "Terminate", "certificateRefs": [{"group": "", "kind": "Secret", "name": secret}]},
                "allowedRoutes": {
                    "namespaces": {
                        "from": "Selector",
                        "selector": {"matchLabels": {"platform.azurelaboratory.com/apps": "true"}},
                    },
                    "kinds": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute"}],
                },
            }
        )
    listeners.append(listener)
    return yamlio.round_trip_dump(data)
