"""The repository rules ask git for every chart copy's ids in a few processes: the answers are the ones asked one at
a time, on a real repository, for a copy as promoted, a copy edited by hand, a commit that is not there, and a
folder that is not."""

from __future__ import annotations

from gitops import git
from gitops import model as repomodel
from gitops.checks import rules

COPY = "environments/prod/pod-details/chart"


def test_batched_ids_are_the_ids_asked_one_by_one(repo):
    (repo.path / COPY / "templates" / "extra.yaml").write_text("# edited by hand\n")
    model = repomodel.load(repo.path)
    known = rules._chart_ids(model, ["dev", "prod"])
    snap = model.snapshot
    assert known[COPY] == snap.tree_id(COPY) is not None
    head = repo.head()
    specs = [f"{head}^{{commit}}", f"{head}:apps/pod-details/chart", f"{'deadbeef' * 5}^{{commit}}", f"{head}:nope"]
    batched = git.object_ids(repo.path, specs)
    assert batched == {s: git.object_id(repo.path, s) for s in specs}
    assert batched[specs[0]] == git.rev_parse(repo.path, head) and batched[specs[2]] is None
    trees = snap.tree_ids([COPY, "apps/pod-details/chart/", "apps/pod-details/chart/Chart.yaml", "no/such/folder"])
    assert trees == {
        COPY: snap.tree_id(COPY),
        "apps/pod-details/chart/": snap.tree_id("apps/pod-details/chart/"),
        "apps/pod-details/chart/Chart.yaml": snap.tree_id("apps/pod-details/chart/Chart.yaml"),
        "no/such/folder": None,
    }
