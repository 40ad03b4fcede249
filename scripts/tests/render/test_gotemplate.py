"""`gitops.render.gotemplate`: the subset of Go's text/template that ApplicationSets use, printing values and
failing the way Go does (Argo CD renders with Go; a difference would be a render that lies)."""

from __future__ import annotations

import pytest

from gitops.render import gotemplate


@pytest.mark.parametrize(
    ("value", "printed"),
    [
        (1e6, "1e+06"),
        (123456.0, "123456"),
        (1234567.0, "1.234567e+06"),
        (0.0001, "0.0001"),
        (1e-05, "1e-05"),
        (3, "3"),
        (True, "true"),
    ],
)
def test_go_value_formatting(value, printed):
    assert gotemplate.render("{{ .v }}", {"v": value}) == printed


def test_go_template_errors_match_go():
    with pytest.raises(gotemplate.TemplateError, match=r"can't evaluate field b in type interface \{\}"):
        gotemplate.render("{{ .a.b }}", {"a": "s"}, ["missingkey=error"])
    with pytest.raises(gotemplate.TemplateError, match=r"nil pointer evaluating interface \{\}\.b"):
        gotemplate.render("{{ .a.b }}", {"a": None}, ["missingkey=error"])
    # Without missingkey=error Go prints "<no value>": what a typo silently becomes.
    assert gotemplate.render("x{{ .nope }}", {}) == "x<no value>"
    assert gotemplate.render("a  {{- .x -}}  b", {"x": "X"}) == "aXb"
    assert (
        gotemplate.render("{{ .l }} {{ .m }}", {"l": ["a", None], "m": {"b": 1, "a": True}})
        == "[a <nil>] map[a:true b:1]"
    )
