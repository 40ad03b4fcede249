"""Audit and recovery on a real history: two builds and two promotions by different people, then a rollback.
`gitops history` reads it back from trailers alone (also in a fresh clone), `gitops rollback` restores the earlier
render byte for byte, and `gitops status` shows prod falling behind after the next build."""

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
    """`gitops render prod` of a checkout: every file written, by name."""
    proc = subprocess.run(
        [sys.executable, "-m", "gitops", "render", "prod", "--out", str(out)], cwd=tree, capture_output=True, text=True
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
    assert repo.trailers("Chart-Revision") == [pins.revision]
    assert repo.git("diff", "--name-only", "HEAD~1", "HEAD").split() == [f"environments/prod/{APP}/release.yaml"]


def _history(repo, *args: str) -> list[dict]:
    return json.loads(repo.ok("history", "--format", "json", *args))


def test_history_lists_promotions_rollback_and_bumps_with_authors(story):
    events = _history(story.repo)

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
    assert promote2["apps"][0]["new"]["revision"] == story.bump2, "prod pinned to the commit that was promoted"
    assert all(e["date"] for e in events)


def test_history_filters_and_text_output(story):
    prod = _history(story.repo, "--env", "prod", "--app", APP)
    assert [e["kind"] for e in prod] == ["rollback", "promote", "promote"]
    assert _history(story.repo, "--app", "nope") == []

    text = story.repo.ok("history")
    for who in ("Alice Admin", "Bob Builder", "Carol Oncall", "Builder Bot"):
        assert who in text
    assert "0.3.0 → 0.2.0" in text
    assert story.rollback[:12] in text


def test_history_works_on_a_fresh_clone(story, tmp_path, clone_repo):
    fresh = clone_repo(story.repo.path, tmp_path / "fresh")

    assert _history(fresh) == _history(story.repo)


def test_rollback_steps_past_the_first_promotion_is_refused(story, tmp_path, clone_repo):
    repo = clone_repo(story.repo.path, tmp_path / "clone")
    before = repo.state()

    proc = repo.gitops("rollback", "--env", "prod", "--app", APP, "--steps", "1")

    assert proc.returncode == 1
    assert f"runs the release of {story.promote1[:12]}, which has 0 earlier promotion(s)" in proc.stderr
    assert repo.state() == before


def test_rollback_to_a_named_promotion_and_unknown_commits(story, tmp_path, clone_repo):
    repo = clone_repo(story.repo.path, tmp_path / "clone")
    before = repo.state()
    proc = repo.gitops("rollback", "--env", "prod", "--app", APP, "--to", story.bump2)
    assert proc.returncode == 1 and "is not a promotion of pod-details to prod" in proc.stderr
    assert story.promote2[:12] in proc.stderr, "the refusal lists the promotions to choose from"
    assert repo.state() == before

    out = repo.ok("rollback", "--env", "prod", "--app", APP, "--to", story.promote2, author="Carol Oncall")
    assert "0.2.0 → 0.3.0" in out
    assert repo.pins("prod") == repo.pins("prod", rev=story.promote2)
    assert repo.trailers("Rollback-Of") == [story.promote1], "undoes the promotion in effect (restored by rollback)"


def test_status_shows_prod_behind_after_a_new_build(story, tmp_path, clone_repo):
    repo = clone_repo(story.repo.path, tmp_path / "clone")
    repo.app_commit("pod-details: third feature", author="Dana Dev")
    repo.bump("0.4.0", author="Builder Bot")

    report = json.loads(repo.ok("status", "--format", "json"))
    cells = {(c["app"], c["env"]): c for c in report["cells"]}
    dev, prod = cells[(APP, "dev")], cells[(APP, "prod")]
    assert dev["tag"] == "0.4.0" and dev["chart_revision"] == "main" and dev["resolved_revision"] == repo.head()
    assert prod["tag"] == "0.2.0"
    # prod runs promote1's chart: the second and third features are app commits it has not got.
    assert prod["behind"] == {"of": "dev", "app_commits": 2, "image_differs": True}
    assert prod["last_change"]["kind"] == "rollback" and prod["last_change"]["author"] == "Carol Oncall"
    assert dev["last_change"]["kind"] == "bump" and dev["last_change"]["author"] == "Builder Bot"

    text = repo.ok("status")
    assert "behind dev: 2 app commit(s), image differs" in text
    assert "Carol Oncall" in text


def test_status_is_current_right_after_a_promotion(story, tmp_path, clone_repo):
    repo = clone_repo(story.repo.path, tmp_path / "clone")
    repo.ok("promote", "--from", "dev", "--to", "prod", author="Alice Admin")

    prod = {(c["app"], c["env"]): c for c in json.loads(repo.ok("status", "--format", "json"))["cells"]}[(APP, "prod")]
    assert prod["behind"] == {"of": "dev", "app_commits": 0, "image_differs": False}
    assert prod["last_change"]["kind"] == "promote"
