"""kubeconform schemas, generated offline from pinned sources.

Built-in kinds come from the pinned Kubernetes release's OpenAPI (``api/openapi-spec/swagger.json`` in the
``k8s.io/kubernetes`` module); custom kinds from the CRDs of the pinned upstreams (``[crds.*]`` in
``toolchain/versions.toml``), all read from the Go module proxy by ``make tools``. The output follows kubeconform's
own layouts, so a schema can be checked by eye against the published ones:

- ``<root>/v<k8s>-standalone-strict/<kind>-<group-prefix>-<version>.json`` for built-ins (yannh/kubernetes-json-schema);
- ``<root>/crds/<group>/<kind>_<version>.json`` for CRDs (the layout kubeconform documents for custom resources).

"Strict" means every object that declares its properties rejects any other, which is what turns a typo into an
error. Nothing here touches the network; tests only read the generated tree.
"""

from __future__ import annotations

import copy
import glob
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

import yaml

from gitops.errors import GitopsError
from gitops.toolchain import PINS_FILE, cache_root, crd_sources, pins

CONVERTER_VERSION = "1"  # bump when the conversion changes, so cached trees are regenerated


class SchemasMissing(GitopsError):
    pass


def _key() -> str:
    h = hashlib.sha256()
    h.update(PINS_FILE.read_bytes())
    h.update(Path(__file__).read_bytes())
    return h.hexdigest()[:16]


def schema_root() -> Path:
    return cache_root() / "schemas" / _key()


def kubernetes_version() -> str:
    return pins()["openapi"]["version"]


def builtin_dir(root: Path | None = None) -> Path:
    return (root or schema_root()) / f"{kubernetes_version()}-standalone-strict"


def crd_bundle_dir(root: Path | None = None) -> Path:
    return (root or schema_root()) / "crd-manifests"


def ensure_schemas() -> Path:
    """The generated schema tree; raises SchemasMissing (with the command to run) if `make tools` has not made it."""
    root = schema_root()
    if not (root / ".complete").exists():
        raise SchemasMissing(f"kubeconform schemas are not generated (expected {root}); run `make tools`")
    return root


def schema_locations(root: Path | None = None) -> list[str]:
    """kubeconform arguments: only local locations, so an unknown kind is an error and nothing is fetched."""
    root = root or ensure_schemas()
    return [
        "-schema-location",
        str(builtin_dir(root)) + "/{{ .ResourceKind }}{{ .KindSuffix }}.json",
        "-schema-location",
        str(root / "crds") + "/{{ .Group }}/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json",
    ]


def crd_files() -> list[Path]:
    """The pinned CRD manifests (one file each), for installing into a control plane."""
    return sorted(crd_bundle_dir(ensure_schemas()).glob("*.yaml"))


# -- conversion ------------------------------------------------------------------------------------------------

NULLABLE_TYPES = {"string", "integer", "number", "boolean", "object", "array"}


def _strict(node, *, nullable: bool):
    """Recursively: reject unknown properties, accept null where Kubernetes does, model int-or-string."""
    if isinstance(node, list):
        return [_strict(n, nullable=nullable) for n in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key in ("properties", "patternProperties", "definitions") and isinstance(value, dict):
            # a map of names to schemas, not a schema: a property may well be called "properties"
            out[key] = {name: _strict(sub, nullable=nullable) for name, sub in value.items()}
        elif key in ("enum", "default", "example", "x-kubernetes-group-version-kind"):
            out[key] = value
        else:
            out[key] = _strict(value, nullable=nullable)
    if out.get("format") == "int-or-string" or out.pop("x-kubernetes-int-or-string", False):
        out.pop("type", None)
        out.pop("format", None)
        out["oneOf"] = [{"type": "string"}, {"type": "integer"}]
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    t = out.get("type")
    if (nullable or out.pop("nullable", False)) and isinstance(t, str) and t in NULLABLE_TYPES:
        out["type"] = [t, "null"]
    return out


QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"


def _builtin_schemas(swagger: dict) -> dict[str, dict]:
    """One standalone schema per kind/version: the kind's definition plus every definition it reaches."""
    definitions = copy.deepcopy(swagger["definitions"])
    # A quantity is written as `cpu: 1` as often as `cpu: 500m`: both are valid.
    definitions[QUANTITY] = {"oneOf": [{"type": "string"}, {"type": "number"}]}
    definitions = {k: _strict(v, nullable=True) for k, v in definitions.items()}

    def reachable(name: str, seen: set[str]) -> None:
        if name in seen:
            return
        seen.add(name)
        stack = [definitions[name]]
        while stack:
            node = stack.pop()
            if isinstance(node, dict):
                ref = node.get("$ref")
                if isinstance(ref, str) and ref.startswith("#/definitions/"):
                    reachable(ref.removeprefix("#/definitions/"), seen)
                stack.extend(node.values())
            elif isinstance(node, list):
                stack.extend(node)

    out: dict[str, dict] = {}
    for name, definition in swagger["definitions"].items():
        for gvk in definition.get("x-kubernetes-group-version-kind", []):
            kind, group, version = gvk["kind"], gvk["group"], gvk["version"]
            if kind.endswith("List") or kind in ("WatchEvent", "DeleteOptions", "Status", "APIGroup"):
                continue
            api_version = f"{group}/{version}" if group else version
            prefix = group.split(".")[0] if group else version
            filename = f"{kind.lower()}-{prefix}-{version}.json" if group else f"{kind.lower()}-{version}.json"
            seen: set[str] = set()
            reachable(name, seen)
            schema = copy.deepcopy(definitions[name])
            schema["$schema"] = "http://json-schema.org/schema#"
            schema["definitions"] = {k: definitions[k] for k in sorted(seen)}
            props = schema.setdefault("properties", {})
            props["apiVersion"] = {"type": "string", "enum": [api_version]}
            props["kind"] = {"type": "string", "enum": [kind]}
            out[filename] = schema
    return out


def _crd_schemas(docs: Iterable[dict]) -> dict[str, dict]:
    out = {}
    for crd in docs:
        if not crd or crd.get("kind") != "CustomResourceDefinition":
            continue
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            schema = copy.deepcopy(version.get("schema", {}).get("openAPIV3Schema") or {"type": "object"})
            props = schema.setdefault("properties", {})
            props["apiVersion"] = {"type": "string", "enum": [f"{group}/{version['name']}"]}
            props["kind"] = {"type": "string", "enum": [kind]}
            props.setdefault("metadata", {"type": "object"})
            schema = _strict(schema, nullable=False)
            schema["$schema"] = "http://json-schema.org/schema#"
            out[f"{group}/{kind.lower()}_{version['name']}.json"] = schema
    return out


def module_dir(module: str, version: str) -> Path:
    from gitops.toolchain.build import module_info

    with tempfile.TemporaryDirectory() as tmp:
        return Path(module_info(module, version, Path(tmp))["Dir"])


def generate(force: bool = False) -> Path:
    """Read the pinned sources from the module cache (downloading via the proxy if needed) and write the tree."""
    root = schema_root()
    if (root / ".complete").exists() and not force:
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=root.parent, prefix=".tmp-"))
    try:
        api = pins()["openapi"]
        swagger = json.loads((module_dir(api["module"], api["version"]) / api["path"]).read_text())
        target = builtin_dir(tmp)
        target.mkdir(parents=True)
        for filename, schema in _builtin_schemas(swagger).items():
            (target / filename).write_text(json.dumps(schema, indent=1, sort_keys=True))

        bundle = crd_bundle_dir(tmp)
        bundle.mkdir(parents=True)
        crds = []
        for source in crd_sources().values():
            base = module_dir(source.module, source.version)
            for pattern in source.paths:
                matches = sorted(glob.glob(str(base / pattern)))
                if not matches:
                    raise GitopsError(f"CRD source {source.name}: {pattern} matches nothing in {source.module}")
                for path in matches:
                    for doc in yaml.safe_load_all(Path(path).read_text()):
                        if doc and doc.get("kind") == "CustomResourceDefinition":
                            crds.append(doc)
                            name = doc["metadata"]["name"]
                            (bundle / f"{name}.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
        for rel, schema in _crd_schemas(crds).items():
            path = tmp / "crds" / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(schema, indent=1, sort_keys=True))
        (tmp / ".complete").write_text(CONVERTER_VERSION + "\n")
        if root.exists():
            shutil.rmtree(root)
        os.replace(tmp, root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return root
