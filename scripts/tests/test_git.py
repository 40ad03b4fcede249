"""`gitops.git`, the one module that runs git: snapshots of the work tree and of commits read the same, tree ids tell
byte-identical folders apart from edited ones, trailers round-trip, and a scratch change lands only by fast-forward."""

from __future__ import annotations

from pathlib import Path

import pytest

from gitops import git
from gitops.errors import GitopsError


@pytest.fixture
def repo(small_repo) -> Path:
    return small_repo({"chart/Chart.yaml": "name: x\n", "chart/templates/a.yaml": "kind: A\n"})


def test_work_tree_and_commit_snapshots_read_the_same_files_and_tree_ids(repo: Path):
    head = git.head(repo)
    work, commit = git.WorkTree(repo), git.Commit(repo, "main")
    assert work.files() == commit.files() == ["chart/Chart.yaml", "chart/templates/a.yaml"]
    assert work.read("chart/Chart.yaml") == commit.read("chart/Chart.yaml") == "name: x\n"
    assert commit.read("nope") is None and work.read("nope") is None
    assert work.tree_id("chart") == commit.tree_id("chart") == git.tree_id(repo, head, "chart")
    (repo / "chart" / "templates" / "a.yaml").write_text("kind: B\n")
    assert git.WorkTree(repo).tree_id("chart") != commit.tree_id("chart"), "an edit changes the tree id"
    assert git.changed_paths(repo, commit.tree_id("chart"), git.WorkTree(repo).tree_id("chart")) == ["templates/a.yaml"]
    commit.close()


def test_a_blob_reader_reads_many_files_through_one_process(repo: Path):
    with git.BlobReader(repo) as blobs:
        assert blobs.read("HEAD", "chart/Chart.yaml") == "name: x\n"
        assert blobs.read("HEAD", "missing.yaml") is None
        assert blobs.read("HEAD", "chart/templates/a.yaml") == "kind: A\n"


def test_revisions_resolve_to_commits_or_none(repo: Path):
    head = git.head(repo)
    assert git.rev_parse(repo, "main") == head == git.resolve(repo, head)
    assert git.rev_parse(repo, "0" * 40) is None and git.resolve(repo, "no-such-branch") is None
    assert git.is_ancestor(repo, head, head) and not git.is_shallow(repo)


def test_trailers_are_appended_in_order_and_a_body_that_reads_as_trailers_is_refused():
    message = git.with_trailers("subject\n\n- body", [("App", "a"), ("App", "b"), ("Image", "r:1")])
    assert message.endswith("App: a\nApp: b\nImage: r:1\n")
    with pytest.raises(GitopsError, match="would be read as trailers"):
        git.with_trailers("subject\n\nimage: x", [("App", "a")])


def test_a_scratch_change_lands_by_fast_forward_only(repo: Path):
    base = git.head(repo)
    with git.Scratch(repo, base) as scratch:
        scratch.write("chart/values.yaml", "a: 1\n")
        sha = scratch.commit("add values", ["chart/values.yaml"])
        git.land(repo, base, sha)
    assert git.head(repo) == sha and (repo / "chart" / "values.yaml").read_text() == "a: 1\n"
    assert len(git.run(repo, "worktree", "list").splitlines()) == 1, "the scratch worktree is gone"
    with pytest.raises(GitopsError, match="HEAD moved"):
        git.land(repo, base, sha)


def test_a_folder_copied_by_tree_id_keeps_that_tree_id(repo: Path):
    tree = git.tree_id(repo, "HEAD", "chart")
    with git.Scratch(repo, git.head(repo)) as scratch:
        scratch.put_tree("environments/prod/x/chart", tree)
        sha = scratch.commit("copy", ["environments/prod/x/chart"])
    assert git.tree_id(repo, sha, "environments/prod/x/chart") == tree
