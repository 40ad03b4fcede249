"""The subset of Go's text/template that this repo's ApplicationSets use: field access, nothing else.

Argo CD renders every string of an ApplicationSet's template with Go templates (plus sprig). The style here keeps
templates to plain field access (``{{ .path.basename }}``, ``{{ .image.tag }}``) so that what an ApplicationSet
generates can be predicted, and reproduced exactly here. Anything beyond that is refused with a clear error rather
than approximated. Values print the way Go's ``fmt`` prints them, because that is what Argo CD writes: JSON numbers
are float64 there, so ``tag: 1.10`` in a release file becomes ``1.1``.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal
from typing import Any

ACTION = re.compile(r"\{\{(-[ \t\r\n])?(.*?)([ \t\r\n]-)?\}\}", re.S)
FIELD_CHAIN = re.compile(r"^\$?((?:\.[A-Za-z_][A-Za-z0-9_]*)+|\.)$")
COMMENT = re.compile(r"^/\*.*\*/$", re.S)

MISSING_OPTIONS = ("missingkey=default", "missingkey=invalid", "missingkey=zero", "missingkey=error")


class TemplateError(Exception):
    """A template that cannot be executed; ``expression`` is the failing action as written."""

    def __init__(self, expression: str, message: str) -> None:
        super().__init__(message)
        self.expression = expression
        self.message = message


def has_actions(text: str) -> bool:
    return "{{" in text


def render(text: str, data: dict[str, Any], options: list[str] | tuple[str, ...] = ()) -> str:
    """Execute ``text`` against ``data`` like ``template.New(..).Option(options...).Parse(text).Execute(data)``."""
    if "{{" not in text:
        return text
    missing_error = "missingkey=error" in options
    for opt in options:
        if opt not in MISSING_OPTIONS:
            raise TemplateError("", f"unsupported template option {opt!r} (known: {', '.join(MISSING_OPTIONS)})")

    out: list[str] = []
    pos = 0
    for m in ACTION.finditer(text):
        literal = text[pos : m.start()]
        if m.group(1):  # `{{- ` trims the whitespace before it
            literal = literal.rstrip(" \t\r\n")
        out.append(literal)
        expr = m.group(2).strip()
        shown = m.group(0)
        if COMMENT.match(expr):
            pass
        else:
            chain = FIELD_CHAIN.match(expr)
            if not chain:
                raise TemplateError(
                    shown,
                    f"unsupported template expression {shown}: only field access such as {{{{ .path.basename }}}}"
                    " is allowed (functions and pipelines make the generated Applications hard to predict)",
                )
            out.append(go_print(_evaluate(chain.group(1), data, missing_error, shown)))
        pos = m.end()
        if m.group(3):  # ` -}}` trims the whitespace after it
            rest = text[pos:]
            pos += len(rest) - len(rest.lstrip(" \t\r\n"))
    tail = text[pos:]
    if "{{" in tail:
        raise TemplateError(tail, f"unclosed action in {text!r}")
    out.append(tail)
    return "".join(out)


_NO_VALUE = object()


def _evaluate(chain: str, data: Any, missing_error: bool, shown: str) -> Any:
    if chain == ".":
        return data
    value = data
    names = chain.strip(".").split(".")
    for i, name in enumerate(names):
        at = "." + ".".join(names[: i + 1])
        if value is _NO_VALUE:
            return _NO_VALUE
        if value is None:
            raise TemplateError(shown, f"at <{chain}>: nil pointer evaluating interface {{}}.{name}")
        if not isinstance(value, dict):
            # Go names the static type: values decoded into map[string]any are all `interface {}`.
            raise TemplateError(shown, f"at <{chain}>: can't evaluate field {name} in type interface {{}}")
        if name not in value:
            if missing_error:
                raise TemplateError(shown, f'at <{at}>: map has no entry for key "{name}"')
            return _NO_VALUE
        value = value[name]
    return value


def go_print(value: Any) -> str:
    """What ``{{ . }}`` prints for a value decoded from JSON (Argo CD decodes generator parameters that way)."""
    if value is _NO_VALUE or value is None:
        return "<no value>"
    return _fmt(value)


def _fmt(value: Any) -> str:
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return go_float(float(value))
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "[" + " ".join(_fmt(v) for v in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{_fmt(value[k])}" for k in sorted(value)) + "]"
    return str(value)


def go_float(f: float) -> str:
    """``fmt.Sprint(float64)``: the shortest digits that round-trip, in exponent form from 1e+06 and below 1e-04."""
    if math.isnan(f):
        return "NaN"
    if math.isinf(f):
        return "+Inf" if f > 0 else "-Inf"
    if f == 0:
        return "-0" if math.copysign(1, f) < 0 else "0"
    d = Decimal(repr(f)).normalize()
    sign, digits, exponent = d.as_tuple()
    assert isinstance(exponent, int)
    ds = "".join(map(str, digits))
    exp10 = len(ds) + exponent - 1  # exponent of the leading digit
    prefix = "-" if sign else ""
    if exp10 < -4 or exp10 >= 6:  # strconv's shortest %g decides with precision 6
        mantissa = ds[0] + ("." + ds[1:] if len(ds) > 1 else "")
        return f"{prefix}{mantissa}e{'-' if exp10 < 0 else '+'}{abs(exp10):02d}"
    return prefix + format(abs(d), "f")
