"""The repository's own files checked against their JSON Schemas (``model/schemas/``): ``environments/promotion.yaml``,
``environments/<env>/env.yaml`` and ``environments/<env>/<app>/release.yaml``. One schema per file, read here and
nowhere else; every problem names the file, the line and what was expected (the schema's own description)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from gitops import yamlio

SCHEMAS = Path(__file__).parent / "schemas"
CHECK = "schema"


@cache
def _validator(name: str) -> Draft202012Validator:
    schema = json.loads((SCHEMAS / f"{name}.schema.json").read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def problems(data: Any, name: str) -> list[tuple[str, int | None]]:
    """(message, line) for each way ``data`` (a round-trip YAML node, for its lines) breaks the schema ``name``."""
    out = []
    plain = yamlio.plain(data)
    for error in sorted(_validator(name).iter_errors(plain), key=lambda e: [str(p) for p in e.absolute_path]):
        out.extend(_describe(data, error))
    return out


def _describe(data: Any, error: ValidationError) -> list[tuple[str, int | None]]:
    path = list(error.absolute_path)
    where = ".".join(str(p) for p in path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = sorted((error.schema.get("properties") or {}).keys())
        extra = [k for k in error.instance if k not in known]
        return [
            (f"unknown key {'.'.join(str(p) for p in [*path, k])!r} (expected: {', '.join(known)})",
             yamlio.line_of(data, *path, k))
            for k in extra
        ]  # fmt: skip
    description = error.schema.get("description")
    if error.validator == "required":
        missing = [k for k in error.validator_value if k not in (error.instance or {})]
        props = error.schema.get("properties") or {}
        return [
            (
                f"`{'.'.join(str(p) for p in [*path, k])}` is missing"
                + (f": {props[k]['description']}" if props.get(k, {}).get("description") else ""),
                yamlio.line_of(data, *path) if path else None,
            )
            for k in missing
        ]
    value = error.instance
    shown = f"{value!r}" if not isinstance(value, (dict, list)) else type(value).__name__
    expected = f"expected {description}" if description else error.message
    return [(f"`{where or '(top level)'}` is {shown}: {expected}", yamlio.line_of(data, *path))]
