"""`gitops promote` and `gitops bump` on real git repositories: what moves, what never moves, the commit and its
trailers, the PR body, and every refusal leaving the repository byte-identical (also when interrupted)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from gitops import git
from gitops.release import promote as promote_lib
from gitops.release import rendered

APP = "pod-details"
IMAGE = "docker.io/azurelaboratory/pod-details"
PROD_RELEASE = f"environments/prod/{APP}/release.yaml"
PROD_VALUES = f"environments/prod/{APP}/values.yaml"
DEV_RELEASE = f"environments/dev/{APP}/release.yaml"
# A chart change that renders in dev (autoscaling off by default) and fails in prod (its overlay turns it on): a
# promotion that carries it must be refused by `gitops validate --env prod`.
PROD_ONLY_BREAKAGE = '{{- if .Values.autoscaling.enabled }}{{ fail "autoscaling broke in this revision" }}{{- end }}\n'


@pytest.fixture(autouse=True)
def _needs_helm(helm):
    """Every test here validates or renders, which needs the pinned helm (fails with `make tools` when missing)."""


PROD_CHART = f"environments/prod/{APP}/chart"


def test_promote_copies_dev_release_to_prod_with_the_chart_of_the_exact_commit(repo):
    old_prod = repo.pins("prod")
    values_before = repo.read(PROD_VALUES)
    app_commit = repo.app_commit("pod-details: log the pod's node name", author="Dana Dev")
    repo.bump("0.2.0")
    source = repo.head()
    body, full = repo.path.parent / "body.md", repo.path.parent / "prod.diff"

    out = repo.ok(
        "promote", "--from", "dev", "--to", "prod", "--pr-body", str(body), "--diff-file", str(full),
        author="Pat Promoter",
    )  # fmt: skip

    assert "promoted dev → prod" in out
    dev, prod = repo.pins("dev"), repo.pins("prod")
    assert dev.follows and not dev.chart_commit, "dev's release names the image only"
    assert (prod.repository, prod.tag, prod.digest) == (dev.repository, dev.tag, dev.digest)
    assert prod.chart_commit == source, "the chart of the exact commit being promoted"
    assert prod.chart_tree == repo.git("rev-parse", f"{source}:apps/{APP}/chart").strip()
    assert repo.git("rev-parse", f"HEAD:{PROD_CHART}").strip() == prod.chart_tree, "the copy is that tree, exactly"
    assert repo.read(PROD_VALUES) == values_before, "values are never promoted"
    assert repo.read(PROD_RELEASE).startswith("# What prod runs"), "comments survive the edit"
    assert repo.git("rev-parse", "HEAD~1").strip() == source, "exactly one commit"
    changed = repo.git("diff", "--name-only", "HEAD~1", "HEAD").split()
    assert changed == sorted([PROD_RELEASE, f"{PROD_CHART}/templates/NOTES.txt"]), "the release and the chart's diff"
    assert repo.git("status", "--porcelain") == ""

    assert repo.git("log", "-1", "--format=%s") == "promote(prod): pod-details 0.1.0 → 0.2.0\n"
    assert repo.git("log", "-1", "--format=%an").strip() == "Pat Promoter"
    assert repo.trailers("Promoted-From") == ["dev"]
    assert repo.trailers("Promoted-To") == ["prod"]
    assert repo.trailers("App") == [APP]
    assert repo.trailers("Image") == [f"{IMAGE}:0.2.0@{dev.digest}"]
    assert repo.trailers("Chart-Commit") == [source]
    assert repo.trailers("Source-Commit") == [source]

    text = body.read_text()
    assert len(text) <= rendered.GITHUB_LIMIT
    assert f"`{IMAGE}:0.1.0`" in text and f"`{IMAGE}:0.2.0@{dev.digest}`" in text
    assert f"`{old_prod.chart_commit[:12]}`" in text and f"`{source[:12]}`" in text
    assert f"{app_commit[:7]} pod-details: log the pod's node name" in text, "changelog of apps/pod-details"
    assert f"+++ b/{PROD_CHART}/templates/NOTES.txt" in text, "the chart's own diff, as the PR's files show it"
    assert "+{{- /* pod-details: log the pod's node name */}}" in text
    assert "```diff" in text
    assert "+          tag: 0.2.0" in text, "the rendered diff of prod shows the new image"
    assert "# Source:" not in text.split("Rendered diff of `prod`")[1], "comment noise is left out of the body"
    assert "lines," in text and "characters" in text, "the body states the diff's size"
    assert "+          tag: 0.2.0" in full.read_text(), "the complete diff is written for the workflow to keep"


def test_promoting_again_with_nothing_new_is_a_no_op(repo):
    repo.bump("0.2.0")
    repo.ok("promote", "--from", "dev", "--to", "prod")
    before = repo.state()

    out = repo.ok("promote", "--from", "dev", "--to", "prod", "--app", APP)

    assert "nothing to promote" in out
    assert repo.state() == before


def test_a_change_to_the_targets_overlay_is_not_a_promotion(repo):
    """The overlay takes effect on main by itself: promotion has nothing to carry for it."""
    repo.write(PROD_VALUES, repo.read(PROD_VALUES).replace("minReplicas: 2", "minReplicas: 3"))
    repo.commit_all("prod: raise minReplicas")
    before = repo.state()

    out = repo.ok("promote", "--from", "dev", "--to", "prod")

    assert "nothing to promote" in out
    assert repo.state() == before


def test_only_the_chart_moves_when_the_app_changed_but_the_image_did_not(repo):
    old = repo.pins("prod")
    repo.app_commit("chart: document the probes")
    head = repo.head()

    repo.ok("promote", "--from", "dev", "--to", "prod")

    new = repo.pins("prod")
    assert (new.tag, new.digest) == (old.tag, old.digest)
    assert new.chart_commit == head
    assert repo.git("log", "-1", "--format=%s").startswith(f"promote(prod): {APP} chart {old.chart_commit[:12]} → ")


def test_an_app_commit_outside_the_chart_moves_the_image_not_the_chart(repo):
    old = repo.pins("prod")
    repo.write(f"apps/{APP}/README.extra.md", "notes\n")
    repo.commit_all("pod-details: a note beside the code")
    repo.bump("0.2.0")

    repo.ok("promote", "--from", "dev", "--to", "prod")

    new = repo.pins("prod")
    assert new.tag == "0.2.0"
    assert (new.chart_commit, new.chart_tree) == (old.chart_commit, old.chart_tree), "same tree: provenance kept"
    assert repo.git("diff", "--name-only", "HEAD~1", "HEAD").split() == [PROD_RELEASE]


def test_dry_run_prints_the_edit_writes_the_pr_body_and_nothing_else(repo):
    repo.app_commit("chart: a comment")
    repo.bump("0.2.0")
    before = repo.state()
    body = repo.path.parent / "body.md"

    out = repo.ok("promote", "--from", "dev", "--to", "prod", "--dry-run", "--pr-body", str(body))

    assert "would promote dev → prod (validated, not committed" in out
    assert '+  tag: "0.2.0"' in out
    assert f"{PROD_CHART}/ ← chart tree" in out
    assert repo.state() == before, "nothing in the repository changed"
    text = body.read_text()
    assert "a dry run: nothing committed" in text and "+          tag: 0.2.0" in text


def _break_prod_only(repo):
    repo.write(f"apps/{APP}/chart/templates/zz-breakage.yaml", PROD_ONLY_BREAKAGE)
    repo.commit_all("chart: a template that fails with autoscaling on")


@pytest.mark.parametrize(
    ("case", "args", "expected"),
    [
        ("dirty tree", ["--from", "dev", "--to", "prod"], "uncommitted changes"),
        ("untracked file", ["--from", "dev", "--to", "prod"], "uncommitted changes"),
        ("unknown app", ["--from", "dev", "--to", "prod", "--app", "nope"], "unknown app 'nope' in dev"),
        ("unknown env", ["--from", "dev", "--to", "staging"], "unknown environment 'staging'"),
        ("backwards", ["--from", "prod", "--to", "dev"], "a release only moves to the next environment"),
        ("same env", ["--from", "dev", "--to", "dev"], "a release only moves to the next environment"),
        ("invalid result", ["--from", "dev", "--to", "prod"], "fails `gitops validate --env prod`"),
    ],
)
def test_refusals_leave_the_repository_byte_identical(repo, case, args, expected):
    repo.bump("0.2.0")
    if case == "dirty tree":
        repo.write(PROD_VALUES, repo.read(PROD_VALUES) + "# local edit\n")
    elif case == "untracked file":
        repo.write("environments/prod/notes.txt", "scratch\n")
    elif case == "invalid result":
        _break_prod_only(repo)
    before = repo.state()
    worktrees = repo.worktrees()

    proc = repo.gitops("promote", *args, "--pr-body", str(repo.path.parent / "body.md"))

    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stderr.startswith("error: ")
    assert expected in proc.stderr
    assert repo.state() == before
    assert repo.worktrees() == worktrees, "the scratch worktree is removed"
    assert not (repo.path.parent / "body.md").exists()


def test_an_invalid_result_names_the_finding(repo):
    repo.bump("0.2.0")
    _break_prod_only(repo)

    proc = repo.gitops("promote", "--from", "dev", "--to", "prod")

    assert "the promotion of dev to prod fails `gitops validate --env prod`" in proc.stderr
    assert "autoscaling broke in this revision" in proc.stderr


def test_interrupt_during_validation_leaves_no_trace(repo, monkeypatch):
    """Ctrl-C while the result is being validated: nothing written, no commit, no scratch worktree left."""
    repo.bump("0.2.0")
    before = repo.state()
    worktrees = repo.worktrees()

    def interrupted(root, envs, what):
        assert (root / PROD_RELEASE).read_text() != (repo.path / PROD_RELEASE).read_text(), "edit is in scratch"
        raise KeyboardInterrupt

    monkeypatch.setattr(rendered, "validate", interrupted)
    with pytest.raises(KeyboardInterrupt):
        promote_lib.promote(repo.path, "dev", "prod", [], None, dry_run=False)

    assert repo.state() == before
    assert repo.worktrees() == worktrees


def test_sigterm_mid_promotion_leaves_no_trace(repo):
    """A cancelled CI job (SIGTERM) while the real CLI validates in its scratch worktree."""
    repo.bump("0.2.0")
    before = repo.state()
    worktrees = repo.worktrees()
    proc = subprocess.Popen(
        [sys.executable, "-m", "gitops", "promote", "--from", "dev", "--to", "prod"],
        cwd=repo.path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60

    def scratch_started() -> bool:
        # Read the metadata directly: `git worktree list` itself fails while `worktree add` is half-way through.
        admin = repo.path / ".git" / "worktrees"
        return admin.is_dir() and any(admin.iterdir())

    while not scratch_started() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert proc.poll() is None, f"promotion finished before it could be interrupted: {proc.communicate()}"
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=60)

    assert proc.returncode != 0
    assert repo.state() == before
    assert repo.worktrees() == worktrees


def test_bump_commits_the_image_with_build_trailers(repo):
    source = repo.head()
    dev_values = repo.read(f"environments/dev/{APP}/values.yaml")

    repo.ok(
        "bump", "--env", "dev", "--app", APP, "--image", f"{IMAGE}:0.2.0-abc1234",
        "--digest", "sha256:" + "1" * 64, "--source-commit", source, author="Builder Bot",
    )  # fmt: skip

    dev = repo.pins("dev")
    assert (dev.tag, dev.digest, dev.follows) == ("0.2.0-abc1234", "sha256:" + "1" * 64, True)
    assert repo.read(f"environments/dev/{APP}/values.yaml") == dev_values
    assert repo.git("log", "-1", "--format=%s") == "bump(dev): pod-details 0.1.0 → 0.2.0-abc1234\n"
    assert repo.trailers("Bumped") == ["dev"]
    assert repo.trailers("App") == [APP]
    assert repo.trailers("Image") == [f"{IMAGE}:0.2.0-abc1234@sha256:" + "1" * 64]
    assert repo.trailers("Source-Commit") == [source]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--env", "prod", "--app", APP, "--image", f"{IMAGE}:9.9.9"], "prod is a promotion target"),
        (["--env", "dev", "--app", APP, "--image", f"{IMAGE}"], "expected REPOSITORY:TAG"),
        (["--env", "dev", "--app", APP, "--image", f"{IMAGE}:1.0", "--digest", "sha256:xyz"], "expected sha256:<64"),
        (["--env", "dev", "--app", "nope", "--image", f"{IMAGE}:1.0"], "unknown app 'nope' in dev"),
    ],
)
def test_bump_refusals_leave_the_repository_byte_identical(repo, args, expected):
    before = repo.state()

    proc = repo.gitops("bump", *args)

    assert proc.returncode == 1 and expected in proc.stderr, proc.stderr
    assert repo.state() == before


def test_bump_refuses_a_result_that_fails_validation(repo):
    """`latest` is not a release: the repo rules reject it, and the bump never lands."""
    before = repo.state()

    proc = repo.gitops("bump", "--env", "dev", "--app", APP, "--image", f"{IMAGE}:latest")

    assert proc.returncode == 1 and "fails `gitops validate --env dev`" in proc.stderr, proc.stderr
    assert repo.state() == before


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ("docker.io/azurelaboratory/pod-details:0.2.0", ("docker.io/azurelaboratory/pod-details", "0.2.0", "")),
        ("localhost:5000/app:1.0", ("localhost:5000/app", "1.0", "")),
        ("app:1.0@sha256:" + "a" * 64, ("app", "1.0", "sha256:" + "a" * 64)),
    ],
)
def test_image_references_parse(image, expected):
    from gitops.release.bump import parse_image

    assert parse_image(image, None) == expected


def test_a_huge_promotion_keeps_the_body_under_githubs_limit_and_the_whole_diff_in_its_file(repo):
    """Hundreds of objects' worth of change: the body is cut with a note, the diff file holds all of it."""
    annotations = "".join(f"  example.com/note-{i:04d}: {'x' * 60}\n" for i in range(900))
    values = f"apps/{APP}/chart/values.yaml"
    repo.write(values, repo.read(values).replace("podAnnotations: {}\n", f"podAnnotations:\n{annotations}", 1))
    repo.commit_all("chart: annotate pods a great deal")
    body, full = repo.path.parent / "body.md", repo.path.parent / "prod.diff"

    repo.ok("promote", "--from", "dev", "--to", "prod", "--pr-body", str(body), "--diff-file", str(full))

    text, whole = body.read_text(), full.read_text()
    assert len(text) <= rendered.GITHUB_LIMIT < len(whole)
    assert "Diff cut to fit GitHub's 65,536-character limit" in text
    assert "the complete diff is `prod.diff`" in text
    assert whole.count("example.com/note-") >= 900


def test_the_pr_body_is_cut_to_githubs_limit_with_a_note():
    diff = "".join(f"+line {i} " + "x" * 80 + "\n" for i in range(5000))
    body = rendered.fit_sections("## head\n", [("### Rendered diff", diff, "gitops diff a b --env prod")])

    assert len(body) <= rendered.GITHUB_LIMIT
    assert body.count("```") == 2, "the fence is closed after the cut"
    assert "Diff cut to fit GitHub's 65,536-character limit" in body
    assert "gitops diff a b --env prod" in body


def test_land_refuses_when_head_moved(repo):
    base = repo.head()
    repo.commit_all("someone else's commit")

    with pytest.raises(Exception, match="HEAD moved"):
        git.land(repo.path, base, base)


def test_promote_what_dev_reported_healthy_not_what_main_has_since(repo):
    """`--source-commit` (the dev-healthy dispatch's revision): dev's pins and chart as of that commit."""
    healthy = repo.bump("0.2.0")
    repo.bump("0.3.0")  # built after dev reported healthy: not yet proven in dev

    repo.ok("promote", "--from", "dev", "--to", "prod", "--source-commit", healthy)

    prod = repo.pins("prod")
    assert (prod.tag, prod.digest) == ("0.2.0", repo.pins("dev", rev=healthy).digest)
    assert repo.trailers("Source-Commit") == [healthy]
    assert repo.head() != healthy

    before = repo.state()
    proc = repo.gitops("promote", "--from", "dev", "--to", "prod", "--source-commit", "0" * 40)
    assert proc.returncode == 1 and "is not a commit in HEAD's history" in proc.stderr
    assert repo.state() == before


def test_the_source_commit_note_names_the_promoted_commit_and_head(repo):
    healthy = repo.bump("0.2.0")
    head = repo.bump("0.3.0")

    out = repo.ok("promote", "--from", "dev", "--to", "prod", "--source-commit", healthy, "--dry-run")

    assert f"promoting dev as of {healthy[:12]} (--source-commit), not HEAD {head[:12]}" in out
    assert "the 1 commit(s) since are not part of this promotion" in out


def test_a_promotion_from_a_stale_local_main_says_which_commits_differ(repo):
    repo.bump("0.2.0")
    repo.git("switch", "--quiet", "-c", "promote/prod")
    head = repo.head()
    repo.git("branch", "--quiet", "-f", "main", "HEAD~1")

    out = repo.ok("promote", "--from", "dev", "--to", "prod", "--dry-run")

    assert (
        f"warning: promoting HEAD ({head[:12]}), but the local branch main is at {repo.git('rev-parse', 'main')[:12]}"
        in out
    )


def test_a_chart_that_stops_rendering_an_object_says_prod_needs_a_sync_with_prune(repo):
    """Prod never prunes by itself: the PR says which live objects will wait for a sync with prune."""
    repo.git("rm", "--quiet", f"apps/{APP}/chart/templates/pdb.yaml")
    repo.commit_all("chart: no disruption budget")
    body = repo.path.parent / "body.md"

    repo.ok("promote", "--from", "dev", "--to", "prod", "--pr-body", str(body))

    text = body.read_text()
    assert "**Needs a sync with prune:**" in text
    assert "- `PodDisruptionBudget apps-prod/pod-details (pod-details-prod)`" in text
    out = repo.ok("rollback", "--env", "prod", "--app", APP, "--steps", "1")
    assert "needs a sync with prune" not in out, "the rollback brings the budget back: nothing to prune"
