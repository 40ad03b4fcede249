"""`gitops.checks.rules`: what no schema can say — each environment's releases against its place in the promotion
order, the promoted chart copies against the commits they name, and where Applications read this repository."""

from __future__ import annotations

from pathlib import Path

import pytest

from gitops import git, model
from gitops.checks import rules
from gitops.render.appset import Application

IMAGE = 'image:\n  repository: docker.io/x/app\n  tag: "1.0"\n  digest: ""\n'


@pytest.fixture
def repo(small_repo, write) -> Path:
    """dev runs apps/app/chart; prod runs a copy of it taken from the first commit."""
    root = small_repo(
        {
            "environments/promotion.yaml": "order: [dev, prod]\n",
            "environments/dev/env.yaml": "name: dev\ncluster: c\nnamespace: apps-dev\ndomain: d\n",
            "environments/prod/env.yaml": "name: prod\ncluster: c\nnamespace: apps-prod\ndomain: d\n",
            "apps/app/chart/Chart.yaml": "name: app\nversion: 0.1.0\n",
            "environments/dev/app/release.yaml": IMAGE,
            "environments/dev/app/values.yaml": "{}\n",
            "environments/prod/app/values.yaml": "{}\n",
        }
    )
    head, tree = git.head(root), git.tree_id(root, "HEAD", "apps/app/chart")
    git.export_tree(root, head, "apps/app/chart", root / "environments/prod/app/chart")
    write(root, {"environments/prod/app/release.yaml": IMAGE + f"chart:\n  commit: {head}\n  tree: {tree}\n"})
    git.run(root, "add", "-A")
    git.run(root, "commit", "--quiet", "-m", "prod runs it")
    return root


def findings(root: Path) -> list[str]:
    repo = model.load(root)
    found, _ = rules.releases(repo, list(repo.environments))
    return [f"{f.file}: {f.message}" for f in found]


def test_a_consistent_repository_has_no_findings(repo: Path):
    assert findings(repo) == []


def test_a_hand_edited_copy_names_the_files_that_differ(repo: Path):
    (repo / "environments/prod/app/chart/Chart.yaml").write_text("name: app\nversion: 0.2.0\n")
    (found,) = findings(repo)
    assert found.startswith("environments/prod/app/chart: environments/prod/app/chart/ is not the chart this release")
    assert "differs in Chart.yaml" in found


def test_a_first_environment_never_names_a_chart_and_a_target_always_does(repo: Path):
    dev, prod = repo / "environments/dev/app/release.yaml", repo / "environments/prod/app/release.yaml"
    chart = prod.read_text().split("chart:")[1]
    dev.write_text(dev.read_text() + "chart:" + chart)
    prod.write_text(IMAGE)
    found = findings(repo)
    assert any("`chart:` in dev, which runs apps/app/chart on main" in f for f in found)
    assert any("`chart:` is missing: prod runs the copy environments/prod/app/chart/" in f for f in found)


def test_an_overlay_left_without_its_release_is_named(repo: Path):
    (repo / "environments/prod/app/release.yaml").unlink()
    (found,) = findings(repo)
    assert "app was removed from prod without its folder" in found


def test_an_app_not_yet_in_a_promotion_target_is_fine_but_is_required_in_the_first(repo: Path, write):
    write(repo, {"apps/new/chart/Chart.yaml": "name: new\nversion: 0.1.0\n"})
    release, overlay = findings(repo)
    assert release.startswith("environments/dev/new/release.yaml: missing release.yaml")
    assert overlay.startswith("environments/dev/new/values.yaml: missing values.yaml")


def application(env: str, path: str, revision: str = "main") -> Application:
    source = {"repoURL": model.REPO_URL, "path": path, "targetRevision": revision}
    manifest = {"metadata": {"name": f"app-{env}"}, "spec": {"sources": [source]}}
    return Application(f"app-{env}", env, "app", "f", f"environments/{env}/applicationset.yaml", manifest)


def test_applications_read_this_repository_at_main_and_their_own_chart(repo: Path):
    loaded = model.load(repo)
    assert (
        rules.sources(
            loaded, [application("dev", "apps/app/chart"), application("prod", "environments/prod/app/chart")]
        )
        == []
    )
    found = [f.message for f in rules.sources(loaded, [application("prod", "apps/app/chart", "v1")])]
    assert found == [
        "Application app-prod reads this repository at 'v1': every source of this repository reads 'main', so an "
        "environment is described at one revision",
        "Application app-prod renders apps/app/chart; prod runs its promoted copy, environments/prod/app/chart",
    ]
