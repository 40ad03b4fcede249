"""`gitops.yamlio`: the repository's YAML with line numbers, parsed once per process."""

from __future__ import annotations

import pytest

from gitops import yamlio

TEXT = "# overlay\nautoscaling:\n  minReplicas: 2\n  maxReplicas: 10\nhostnames:\n  - a.example.com\n"


def test_a_document_read_twice_is_equal_keeps_its_lines_and_is_the_callers_own():
    first, second = yamlio.load(TEXT, "values.yaml"), yamlio.load(TEXT, "values.yaml")
    assert first == second == {"autoscaling": {"minReplicas": 2, "maxReplicas": 10}, "hostnames": ["a.example.com"]}
    assert yamlio.line_of(second, "autoscaling", "maxReplicas") == 4
    assert yamlio.line_of(second, "hostnames", 0) == 6
    second["autoscaling"]["minReplicas"] = 3
    assert yamlio.load(TEXT, "values.yaml")["autoscaling"]["minReplicas"] == 2
    assert first["autoscaling"]["minReplicas"] == 2


@pytest.mark.parametrize("attempt", [1, 2])
def test_invalid_yaml_names_the_file_and_line_every_time(attempt):
    with pytest.raises(yamlio.YamlError) as e:
        yamlio.load("a: 1\na: 2\n", "environments/dev/x/values.yaml")
    assert str(e.value).startswith("environments/dev/x/values.yaml:2: ")
