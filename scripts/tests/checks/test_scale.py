"""What keeps `gitops validate`'s cost per app constant gives the answers the simple way gives, on a real repository:
the repository rules ask git for every chart copy's ids in a few processes (a copy as promoted, a copy edited by
hand, a commit that is not there, a folder that is not), and folder questions are answered from an index."""

from __future__ import annotations

from gitops import git
from gitops import model as repomodel
from gitops.checks import rules

COPY = "environments/prod/pod-details/chart"


def test_batched_chart_ids_are_the_ids_asked_one_by_one(repo):
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


def test_folder_queries_answer_what_a_scan_of_the_files_answers(repo):
    """is_dir and children come from an index built once (a scan per question made validate quadratic in apps)."""
    for snap in (git.WorkTree(repo.path), git.Commit(repo.path, "HEAD")):
        files = snap.files()
        dirs = {"/".join(f.split("/")[:n]) for f in files for n in range(1, f.count("/") + 1)}
        assert "environments/prod/pod-details/chart/templates" in dirs
        for path in [*sorted(dirs), "", "/", "apps/", "no/such", "apps/pod-details/chart/Chart.yaml"]:
            prefix = path.rstrip("/") + "/"
            under = [f[len(prefix) :] for f in files if f.startswith(prefix)]
            assert snap.is_dir(path) == bool(under), path
            assert snap.children(path) == sorted({u.split("/", 1)[0] for u in under if "/" in u}), path
