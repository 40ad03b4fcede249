"""YAML for the repo's own config files: kept line numbers, refused duplicate keys, errors that name the file.

The round-trip loader (ruamel.yaml) is slower than PyYAML's C loader but it remembers where every key came from,
which is what lets an error say `environments/prod/pod-details/release.yaml:4`. Rendered manifests, which are
large and machine-written, go through PyYAML instead (see ``load_manifests``).
"""

from __future__ import annotations

import contextlib
import io
import pickle
from typing import Any

import yaml
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from gitops.errors import GitopsError

try:  # the C loader is ~10x faster on rendered manifests; fall back where libyaml is missing
    _FastLoader: type = yaml.CSafeLoader
except AttributeError:  # pragma: no cover
    _FastLoader = yaml.SafeLoader


class YamlError(GitopsError):
    """A file that is not valid YAML (syntax error, duplicate key): names the file and the line."""

    def __init__(self, file: str, line: int | None, message: str) -> None:
        self.file = file
        self.line = line
        self.message = message
        super().__init__(f"{file}:{line}: {message}" if line else f"{file}: {message}")


def _yaml() -> YAML:
    # A fresh instance per call: ruamel's YAML objects are not safe to share between threads.
    y = YAML(typ="rt")
    y.allow_duplicate_keys = False
    return y


def round_trip() -> YAML:
    """For files the tools edit (release pins, overlays, the Gateway): comments, key order and quoting survive, in
    the repository's layout. A fresh instance per call, for the same thread-safety reason as above."""
    y = _yaml()
    y.preserve_quotes = True
    y.width = 4096  # never re-wrap a long comment or value
    y.indent(mapping=2, sequence=4, offset=2)
    return y


def _error(file: str, e: YAMLError) -> YamlError:
    if isinstance(e, MarkedYAMLError):
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark else None
        what = " ".join(str(p) for p in (e.context, e.problem) if p)
        return YamlError(file, line, what or str(e))
    return YamlError(file, None, str(e))


# Documents already parsed in this process, pickled: the same file is read by the model and again by the ApplicationSet
# generator, and unpickling a document costs a few percent of parsing it. Each caller gets its own copy.
_parsed: dict[str, bytes] = {}
_PARSED_MAX = 4096


def load(text: str, file: str) -> Any:
    """One YAML document, keeping line numbers (CommentedMap/CommentedSeq); raises YamlError."""
    blob = _parsed.get(text)
    if blob is not None:
        return pickle.loads(blob)  # noqa: S301 - bytes this process pickled itself
    try:
        doc = _yaml().load(text)
    except YAMLError as e:
        raise _error(file, e) from None
    if len(_parsed) >= _PARSED_MAX:
        _parsed.clear()
    with contextlib.suppress(pickle.PicklingError, TypeError, RecursionError):  # then it is parsed again next time
        _parsed[text] = pickle.dumps(doc)
    return doc


def load_all(text: str, file: str) -> list[Any]:
    """Every document of a multi-document file (empty documents dropped); raises YamlError."""
    try:
        return [d for d in _yaml().load_all(text) if d is not None]
    except YAMLError as e:
        raise _error(file, e) from None


def line_of(node: Any, *path: str | int) -> int | None:
    """1-based line of the last key (or list item) of ``path`` inside ``node``; the nearest known line otherwise."""
    line = node.lc.line + 1 if isinstance(node, (CommentedMap, CommentedSeq)) else None
    for step in path:
        if isinstance(node, CommentedMap) and step in node:
            line = node.lc.key(step)[0] + 1
            node = node[step]
        elif isinstance(node, CommentedSeq) and isinstance(step, int) and 0 <= step < len(node):
            line = node.lc.item(step)[0] + 1
            node = node[step]
        else:
            break
    return line


def plain(node: Any) -> Any:
    """Round-trip nodes as plain dict/list/str/int/float/bool, for code that must not care about ruamel."""
    if isinstance(node, dict):
        return {str(k): plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [plain(v) for v in node]
    if isinstance(node, bool) or node is None:
        return node
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    if isinstance(node, str):
        return str(node)
    return node


def load_manifests(text: str) -> list[Any]:
    """Machine-written multi-document YAML (helm output), fast; raises yaml.YAMLError."""
    return list(yaml.load_all(text, Loader=_FastLoader))


def load_fast(text: str) -> Any:
    return yaml.load(text, Loader=_FastLoader)  # noqa: S506 - CSafeLoader (or SafeLoader): no arbitrary objects


def dump(data: Any) -> str:
    """Block-style YAML in the key order given, the way a person would write it."""
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False, width=120, allow_unicode=True)


def round_trip_dump(data: Any) -> str:
    """``data`` written the way `round_trip` reads it: comments and quoting kept, the repository's indentation."""
    out = io.StringIO()
    round_trip().dump(data, out)
    return out.getvalue()


def commented(node: Any) -> Any:
    """Plain dicts and lists as ruamel nodes, so they dump in the given order and the repository's indentation."""
    if isinstance(node, dict):
        out = CommentedMap()
        for k, v in node.items():
            out[k] = commented(v)
        return out
    if isinstance(node, list):
        return CommentedSeq([commented(v) for v in node])
    return node
