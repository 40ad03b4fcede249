"""`gitops.model.schema` and the model: the repository's own files checked against their schemas as they load."""

from __future__ import annotations

import subprocess
from pathlib import Path

from gitops import model, yamlio
from gitops.model import schema


def test_problems_name_the_key_the_line_and_what_was_expected():
    data = yamlio.load("name: dev\ncluster: aks-dev\nnamespace: Apps_Dev\ndomain: example.com\nsync: {}\n", "env.yaml")
    found = dict(schema.problems(data, "env"))
    assert found == {
        "`namespace` is 'Apps_Dev': expected the namespace its apps deploy into": 3,
        "unknown key 'sync' (expected: cluster, domain, name, namespace)": 5,
    }


def test_a_missing_key_says_what_it_is_for():
    data = yamlio.load("order: []\n", "promotion.yaml")
    assert schema.problems(data, "promotion") == [
        ("`order` is list: expected environment names, first to last, each once", 1)
    ]
    assert schema.problems(yamlio.load("{}\n", "p"), "promotion")[0][0].startswith("`order` is missing")


def test_loading_a_repository_records_every_schema_problem_and_builds_the_rest(tmp_path: Path):
    files = {
        "environments/promotion.yaml": "order: [dev, prod, dev]\n",
        "environments/dev/env.yaml": "name: dev\ncluster: c\nnamespace: apps-dev\ndomain: d\n",
        "environments/prod/env.yaml": "name: prod\ncluster: c\nnamespace: apps-prod\n",
        "environments/dev/app/release.yaml": 'image:\n  repository: r\n  tag: latest\n  digest: ""\n',
    }
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    subprocess.run(["git", "init", "--quiet", str(tmp_path)], check=True)
    repo = model.load(tmp_path)
    found = {(p.file, p.line, p.message) for p in repo.problems if p.check == "schema"}
    assert (
        "environments/promotion.yaml",
        1,
        "`order` is list: expected environment names, first to last, each once",
    ) in found
    assert any(f == "environments/prod/env.yaml" and m.startswith("`domain` is missing") for f, _, m in found)
    assert any(f == "environments/dev/app/release.yaml" and line == 3 for f, line, _ in found)
    assert repo.environments["dev"].cluster == "c", "a valid env.yaml is read though others are not"
    assert repo.app_envs[("dev", "app")].release.pins is None
