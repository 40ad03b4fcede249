from __future__ import annotations

from openapi_spec_validator import OpenAPIV31SpecValidator, validate

from pod_details import kube
from pod_details.app import create_app
from pod_details.openapi import document
from pod_details.settings import Settings
from pod_details.version import AppInfo


def served() -> dict[str, object]:
    app = create_app(Settings.from_env({}), access=kube.Access("none", None, "test"))
    return app.test_client().get("/api/v1/openapi.json").json


def test_the_served_document_is_valid_openapi_3_1() -> None:
    doc = served()
    assert doc["openapi"] == "3.1.0"
    validate(doc, cls=OpenAPIV31SpecValidator)  # raises with the offending path when invalid


def test_it_describes_exactly_the_routes_the_app_serves() -> None:
    app = create_app(Settings.from_env({}), access=kube.Access("none", None, "test"))
    routes = {rule.rule for rule in app.url_map.iter_rules() if rule.endpoint != "static"}
    doc = document(AppInfo.current("pod-details", "unknown"))
    assert set(doc["paths"]) == routes
    for path, item in doc["paths"].items():
        methods = {m for rule in app.url_map.iter_rules() if rule.rule == path for m in rule.methods or ()}
        assert methods == {"GET", "HEAD"}, path
        assert set(item) == {"get"}, path


def test_version_matches_the_package() -> None:
    doc = served()
    assert doc["info"]["version"] == AppInfo.current("pod-details", "unknown").version
