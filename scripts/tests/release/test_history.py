"""Audit and recovery on a real history: two builds and two promotions by different people, then a rollback.
`gitops history` reads it back from git alone (also in a fresh clone), with who merged each change and when;
`gitops rollback` restores the earlier render byte for byte and never touches the overlay; `gitops status` shows prod
falling behind after the next build."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

APP = "pod-details"
IMAGE = "docker.io/azurelaboratory/pod-details"


@dataclass
class Story:
    repo: Any  # conftest.GitRepo
    bump1: str
    promote1: str
    bump2: str
    promote2: str
    rollback: str


@pytest.fixture(scope="module")
def story(seed_repo: Path, tmp_path_factory: pytest.TempPathFactory, helm, clone_repo) -> Story:
    repo = clone_repo(seed_repo, tmp_path_factory.mktemp("story") / "repo")
    repo.app_commit("pod-details: first feature", author="Dana Dev")
    bump1 = repo.bump("0.2.0", author="Builder Bot")
    repo.ok("promote", "--from", "dev", "--to", "prod", author="Alice Admin")
    promote1 = repo.head()
    repo.app_commit("pod-details: second feature", author="Dana Dev")
    bump2 = repo.bump("0.3.0", author="Builder Bot")
    repo.ok("promote", "--from", "dev", "--to", "prod", "--app", APP, author="Bob Builder")
    promote2 = repo.head()
    repo.ok("rollback", "--env", "prod", "--app", APP, author="Carol Oncall")
    return Story(repo, bump1, promote1, bump2, promote2, repo.head())


def _render(tree: Path, out: Path) -> dict[str, bytes]:
    """`gitops render --env prod` of a checkout: every file written, by name."""
    proc = subprocess.run(
        [sys.executable, "-m", "gitops", "render", "--env", "prod", "--out", str(out)],
        cwd=tree,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    files = {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
    assert files, "the render wrote nothing"
    return files


def test_rollback_restores_the_earlier_render_byte_for_byte(story, tmp_path):
    repo = story.repo
    earlier = tmp_path / "at-promotion"
    repo.git("worktree", "add", "--quiet", "--detach", str(earlier), story.promote1)
    try:
        at_promotion = _render(earlier, tmp_path / "render-promotion")
    finally:
        repo.git("worktree", "remove", "--force", str(earlier))
    after_rollback = _render(repo.path, tmp_path / "render-rollback")

    assert after_rollback == at_promotion
    assert repo.pins("prod") == repo.pins("prod", rev=story.promote1)


def test_rollback_is_a_new_commit_with_trailers(story):
    repo = story.repo
    assert repo.git("rev-parse", "HEAD~1").strip() == story.promote2, "history is never rewritten"
    assert repo.git("log", "-1", "--format=%s").strip() == f"rollback(prod): {APP} 0.3.0 → 0.2.0"
    assert repo.trailers("Rollback-Of") == [story.promote2]
    assert repo.trailers("Rolled-Back-To") == [story.promote1]
    assert repo.trailers("App") == [APP]
    pins = repo.pins("prod", rev=story.promote1)
    assert repo.trailers("Image") == [pins.image]
    assert repo.trailers("Chart-Commit") == [pins.chart_commit]
    changed = repo.git("diff", "--name-only", "HEAD~1", "HEAD").split()
    assert f"environments/prod/{APP}/release.yaml" in changed
    assert all(f.startswith(f"environments/prod/{APP}/chart/") for f in changed if not f.endswith("release.yaml"))
    assert repo.git("rev-parse", f"HEAD:environments/prod/{APP}/chart").strip() == pins.chart_tree


def _history(repo, *args: str) -> list[dict]:
    return json.loads(repo.ok("history", "--format", "json", *args))


def test_history_lists_promotions_rollback_and_bumps_with_authors(story):
    events = _history(story.repo)[:5]  # the story; older entries are the repository's own history

    got = [(e["kind"], e["env"], e["author"], e["commit"]) for e in events]
    assert got == [
        ("rollback", "prod", "Carol Oncall", story.rollback),
        ("promote", "prod", "Bob Builder", story.promote2),
        ("bump", "dev", "Builder Bot", story.bump2),
        ("promote", "prod", "Alice Admin", story.promote1),
        ("bump", "dev", "Builder Bot", story.bump1),
    ]
    moves = [(e["apps"][0]["old"]["tag"], e["apps"][0]["new"]["tag"]) for e in events]
    assert moves == [("0.3.0", "0.2.0"), ("0.2.0", "0.3.0"), ("0.2.0", "0.3.0"), ("0.1.0", "0.2.0"), ("0.1.0", "0.2.0")]
    rollback, promote2 = events[0], events[1]
    assert rollback["rollback_of"] == story.promote2 and rollback["rolled_back_to"] == story.promote1
    assert promote2["source_env"] == "dev" and promote2["source_commit"] == story.bump2
    assert promote2["apps"][0]["new"]["chart_commit"] == story.bump2, "prod's chart copied from the promoted commit"
    assert all(e["date"] for e in events)
    # Committed straight to main: each reached it as itself, committed by its author.
    assert all(e["merged"]["commit"] == e["commit"] and e["merged"]["by"] == e["author"] for e in events)


def test_history_filters_and_text_output(story):
    prod = _history(story.repo, "--env", "prod", "--app", APP)
    assert [e["kind"] for e in prod[:3]] == ["rollback", "promote", "promote"]
    assert {e["env"] for e in prod} == {"prod"}
    for args, expected in (
        (["--env", "staging"], "unknown environment 'staging'"),
        (["--app", "nope"], "unknown app 'nope'"),
    ):
        proc = story.repo.gitops("history", *args)
        assert proc.returncode == 1 and expected in proc.stderr, proc.stderr

    text = story.repo.ok("history")
    for who in ("Alice Admin", "Bob Builder", "Carol Oncall", "Builder Bot"):
        assert who in text
    assert "0.3.0 → 0.2.0" in text
    assert story.rollback[:12] in text


def test_history_works_on_a_fresh_clone(story, tmp_path, clone_repo):
    fresh = clone_repo(story.repo.path, tmp_path / "fresh")

    assert _history(fresh) == _history(story.repo)


def test_rollback_steps_back_to_the_first_recorded_release_and_no_further(story, tmp_path, clone_repo):
    repo = clone_repo(story.repo.path, tmp_path / "clone")
    first = repo.pins("prod", rev=f"{story.promote1}~1")  # what prod ran before its first promotion

    out = repo.ok("rollback", "--env", "prod", "--app", APP, "--steps", "1", author="Carol Oncall")

    assert "0.2.0 → 0.1.0" in out
    assert repo.pins("prod") == first
    assert repo.git("rev-parse", f"HEAD:environments/prod/{APP}/chart").strip() == first.chart_tree
    before = repo.state()
    proc = repo.gitops("rollback", "--env", "prod", "--app", APP, "--steps", "1")
    assert proc.returncode == 1
    assert "and 0 earlier release(s) are recorded" in proc.stderr
    assert repo.state() == before


def test_rollback_to_a_named_release_and_unknown_commits(story, tmp_path, clone_repo):
    repo = clone_repo(story.repo.path, tmp_path / "clone")
    before = repo.state()
    proc = repo.gitops("rollback", "--env", "prod", "--app", APP, "--to", story.bump2)
    assert proc.returncode == 1 and "is not a commit that changed the release of pod-details in prod" in proc.stderr
    assert story.promote2[:12] in proc.stderr, "the refusal lists the releases to choose from"
    assert repo.state() == before

    out = repo.ok("rollback", "--env", "prod", "--app", APP, "--to", story.promote2, author="Carol Oncall")
    assert "0.2.0 → 0.3.0" in out
    assert repo.pins("prod") == repo.pins("prod", rev=story.promote2)
    assert repo.trailers("Rollback-Of") == [story.promote1], "undoes the promotion in effect (restored by rollback)"

    first_release = repo.git("log", "-1", "--format=%H", f"{story.promote1}~1", "--", f"environments/prod/{APP}")
    out = repo.ok("rollback", "--env", "prod", "--app", APP, "--to", first_release.strip())
    assert repo.pins("prod") == repo.pins("prod", rev=first_release.strip())


def test_rollback_keeps_the_overlay_as_it_is_on_main(story, tmp_path, clone_repo):
    """An incident raised prod's minimum after the promotion: rolling the release back must not undo that."""
    repo = clone_repo(story.repo.path, tmp_path / "clone")
    values = f"environments/prod/{APP}/values.yaml"
    repo.write(values, repo.read(values).replace("minReplicas: 2", "minReplicas: 4"))
    repo.commit_all("prod: raise minReplicas during an incident", author="Olga Ops")
    raised = repo.read(values)

    out = repo.ok("rollback", "--env", "prod", "--app", APP, "--to", story.promote2)

    assert repo.read(values) == raised
    assert "values.yaml stays as on main: a rollback restores releases, not values" in out
    assert "autoscaling.minReplicas 2 → 4" in out
    hpa = next(d for d in _docs(repo.path, tmp_path) if d["kind"] == "HorizontalPodAutoscaler")
    assert hpa["spec"]["minReplicas"] == 4
    events = _history(repo, "--env", "prod")
    assert events[0]["kind"] == "rollback" and events[1]["kind"] == "values"
    assert events[1]["apps"][0]["values"] == [{"key": "autoscaling.minReplicas", "old": 2, "new": 4}]
    assert events[1]["author"] == "Olga Ops"


def _docs(tree: Path, tmp_path: Path) -> list[dict]:
    import yaml

    files = _render(tree, tmp_path / "render-docs")
    return [d for text in files.values() for d in yaml.safe_load_all(text) if d]


def test_history_names_who_merged_a_promotion_and_when_it_reached_main(story, tmp_path, clone_repo):
    """A promotion PR prepared by the bot, merged with a merge commit by a reviewer; another rebased onto main."""
    repo = clone_repo(story.repo.path, tmp_path / "clone")
    repo.git("switch", "--quiet", "-c", "promote/prod")
    repo.ok("promote", "--from", "dev", "--to", "prod", author="Promotion Bot")
    prepared = repo.head()
    repo.git("switch", "--quiet", "main")
    repo.git("merge", "--quiet", "--no-ff", "-m", "Merge pull request #7 from promote/prod", "promote/prod",
             author="Rita Reviewer")  # fmt: skip
    merge = repo.head()

    event = _history(repo, "--env", "prod")[0]

    assert (event["kind"], event["commit"], event["author"]) == ("promote", prepared, "Promotion Bot")
    assert event["merged"]["commit"] == merge and event["merged"]["by"] == "Rita Reviewer"
    assert event["merged"]["date"] == repo.git("log", "-1", "--format=%aI", merge).strip()
    text = repo.ok("history", "--env", "prod")
    assert "Rita Reviewer" in text.splitlines()[1] and "Promotion Bot" in text.splitlines()[1]

    # Rebased onto main by someone else: it reaches main as a new commit, committed by them.
    repo.git("switch", "--quiet", "-c", "rollback/prod")
    repo.ok("rollback", "--env", "prod", "--app", APP, author="Carol Oncall")
    picked = repo.head()
    repo.git("switch", "--quiet", "main")
    repo.git("cherry-pick", "--quiet", picked, author="Rita Reviewer")
    event = _history(repo, "--env", "prod")[0]
    assert event["kind"] == "rollback" and event["author"] == "Carol Oncall"
    assert event["merged"]["commit"] == event["commit"] and event["merged"]["by"] == "Rita Reviewer"


def test_status_shows_prod_behind_after_a_new_build(story, tmp_path, clone_repo):
    repo = clone_repo(story.repo.path, tmp_path / "clone")
    repo.app_commit("pod-details: third feature", author="Dana Dev")
    repo.bump("0.4.0", author="Builder Bot")

    report = json.loads(repo.ok("status", "--format", "json"))
    cells = {(c["app"], c["env"]): c for c in report["cells"]}
    dev, prod = cells[(APP, "dev")], cells[(APP, "prod")]
    assert dev["tag"] == "0.4.0" and dev["chart_follows"] == "main" and dev["resolved_revision"] == repo.head()
    assert prod["tag"] == "0.2.0"
    # prod runs promote1's chart: the second and third features are app commits it has not got.
    assert prod["behind"] == {"of": "dev", "app_commits": 2, "image_differs": True, "chart_differs": True}
    assert prod["last_change"]["kind"] == "rollback" and prod["last_change"]["author"] == "Carol Oncall"
    assert dev["last_change"]["kind"] == "bump" and dev["last_change"]["author"] == "Builder Bot"

    text = repo.ok("status")
    assert "image from dev, chart from dev (2 app commit(s))" in text
    assert "Carol Oncall" in text


def test_status_is_current_right_after_a_promotion(story, tmp_path, clone_repo):
    repo = clone_repo(story.repo.path, tmp_path / "clone")
    repo.ok("promote", "--from", "dev", "--to", "prod", author="Alice Admin")

    prod = {(c["app"], c["env"]): c for c in json.loads(repo.ok("status", "--format", "json"))["cells"]}[(APP, "prod")]
    assert prod["behind"] == {"of": "dev", "app_commits": 0, "image_differs": False, "chart_differs": False}
    assert prod["last_change"]["kind"] == "promote"


def test_status_names_an_overlay_change_that_is_not_on_main_yet(story, tmp_path, clone_repo):
    repo = clone_repo(story.repo.path, tmp_path / "clone")
    values = f"environments/prod/{APP}/values.yaml"
    repo.write(values, repo.read(values).replace("minReplicas: 2", "minReplicas: 3"))

    cells = {(c["app"], c["env"]): c for c in json.loads(repo.ok("status", "--format", "json"))["cells"]}
    assert cells[(APP, "prod")]["unmerged"] == ["values"]
    assert cells[(APP, "dev")]["unmerged"] == []
    assert "values not on main" in repo.ok("status")
