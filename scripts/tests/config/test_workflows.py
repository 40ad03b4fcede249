"""The GitHub workflows: both linters clean, every action pinned to a commit, least privilege, and every step only
naming `make` or `gitops` verbs (logic lives in the CLI, where it is tested)."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from gitops.cli import main as cli
from gitops.toolchain import ToolMissing, tool_path

REPO = Path(__file__).resolve().parents[3]
GITHUB = REPO / ".github"
WORKFLOWS = sorted((GITHUB / "workflows").glob("*.yaml"))
ACTIONS = sorted((GITHUB / "actions").glob("*/action.yml"))
PINNED = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@[0-9a-f]{40}$")
VERSION_COMMENT = re.compile(r"uses: (\S+) # v\d+(\.\d+)*$")
# The one job allowed to keep the checkout's token: it pushes dev's bump commit (with `gitops push`).
PUSHING_JOBS = {("build.yaml", "image")}


def load(path: Path) -> dict:
    data = yaml.safe_load(path.read_text())
    data["on"] = data.pop(True, data.get("on"))  # YAML 1.1 reads a bare `on` key as true
    return data


def jobs() -> list[tuple[str, str, dict]]:
    return [(w.name, name, job) for w in WORKFLOWS for name, job in load(w)["jobs"].items()]


def steps() -> list[tuple[str, str, dict]]:
    out = [(w, j, s) for w, j, job in jobs() for s in job.get("steps", [])]
    out += [(a.parent.name, "composite", s) for a in ACTIONS for s in yaml.safe_load(a.read_text())["runs"]["steps"]]
    return out


def test_the_three_workflows_exist():
    assert {w.name for w in WORKFLOWS} == {"ci.yaml", "build.yaml", "promote.yaml"}


@pytest.mark.toolchain
def test_actionlint_reports_nothing():
    try:
        actionlint = tool_path("actionlint")
    except ToolMissing as e:
        pytest.fail(str(e))
    shellcheck = Path(sys.executable).parent / "shellcheck"  # as the pre-commit hook runs it: `run:` checked too
    args = [str(actionlint), f"-shellcheck={shellcheck}", *map(str, WORKFLOWS)]
    proc = subprocess.run(args, cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("target", [".github/workflows", ".github"])
def test_zizmor_reports_nothing(target):
    zizmor = Path(sys.executable).parent / "zizmor"
    assert zizmor.exists(), f"{zizmor} missing: run `make setup`"
    proc = subprocess.run([str(zizmor), "--offline", target], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_yamllint_with_the_repos_config_reports_nothing():
    yamllint = Path(sys.executable).parent / "yamllint"
    proc = subprocess.run(
        [str(yamllint), "--strict", "-c", ".yamllint", ".github"], cwd=REPO, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_action_is_pinned_to_a_commit_with_its_version_in_a_comment():
    for where, _, step in steps():
        uses = step.get("uses")
        if uses is None or uses.startswith("./"):
            continue
        assert PINNED.match(uses), f"{where}: {uses} is not pinned to a 40-hex commit"
    for path in [*WORKFLOWS, *ACTIONS]:
        for line in path.read_text().splitlines():
            if "uses:" in line and "./" not in line:
                assert VERSION_COMMENT.search(line.strip()), f"{path.name}: `{line.strip()}` lacks `# vX.Y.Z`"


def test_permissions_are_empty_at_the_top_and_minimal_per_job():
    for w in WORKFLOWS:
        assert load(w)["permissions"] == {}, f"{w.name}: top-level permissions must be {{}}"
    writes = {}
    for wf, name, job in jobs():
        assert "permissions" in job, f"{wf}/{name} has no permissions block"
        for scope, level in job["permissions"].items():
            if level == "write":
                writes.setdefault((wf, name), set()).add(scope)
    assert writes == {
        ("ci.yaml", "rendered-diff"): {"pull-requests"},
        ("build.yaml", "image"): {"contents"},
        ("promote.yaml", "promote"): {"contents", "pull-requests"},
    }


def test_checkouts_do_not_keep_credentials_unless_the_job_pushes():
    for wf, name, job in jobs():
        for step in job.get("steps", []):
            if str(step.get("uses", "")).startswith("actions/checkout@"):
                persist = step.get("with", {}).get("persist-credentials")
                expected = (wf, name) in PUSHING_JOBS
                assert persist is expected, f"{wf}/{name}: persist-credentials should be {expected}"


def test_run_steps_only_call_make_or_gitops_verbs():
    verbs = set(cli.commands)
    for where, job, step in steps():
        run = step.get("run")
        if run is None:
            continue
        assert len(run.strip().splitlines()) <= 3, f"{where}/{job}: `{run}` is shell logic: move it into the CLI"
        argv = shlex.split(run)
        assert argv[0] in ("make", ".venv/bin/gitops", ".venv/bin/pytest"), f"{where}/{job}: runs {argv[0]}"
        if argv[0] == ".venv/bin/gitops":
            assert argv[1] in verbs, f"{where}/{job}: `gitops {argv[1]}` is not a verb of the CLI"
        assert "${{" not in run, f"{where}/{job}: pass expressions through env, never into the shell text"


def test_promotion_never_races_and_opens_one_pr_per_target():
    wf = load(GITHUB / "workflows" / "promote.yaml")
    assert wf["concurrency"] == {"group": "promote-prod", "cancel-in-progress": False}
    assert set(wf["on"]) == {"workflow_dispatch", "repository_dispatch"}
    assert wf["on"]["repository_dispatch"]["types"] == ["dev-healthy"]
    (job,) = wf["jobs"].values()
    runs = [s["run"] for s in job["steps"] if "run" in s]
    (promote,) = [r for r in runs if r.startswith(".venv/bin/gitops promote --from dev --to prod")]
    assert "--pr-body" in promote and '--diff-file "$RUNNER_TEMP/prod-rendered.diff"' in promote
    # The complete rendered diff, which the PR body may have to cut, stays with the run.
    (upload,) = [s for s in job["steps"] if str(s.get("uses", "")).startswith("actions/upload-artifact@")]
    assert upload["with"]["path"] == "${{ runner.temp }}/prod-rendered.diff"
    (pr,) = [s for s in job["steps"] if str(s.get("uses", "")).startswith("peter-evans/create-pull-request@")]
    assert pr["with"]["branch"] == "promote/prod"
    assert pr["with"]["labels"].split() == ["promotion", "env:prod"]
    # It never merges: no step runs a merge, none enables auto-merge.
    assert not any("merge" in s.get("run", "") or "automerge" in s.get("uses", "") for s in job["steps"])


def test_the_dev_healthy_trigger_it_documents_exists():
    text = (GITHUB / "workflows" / "promote.yaml").read_text()
    for ref in ("clusters/aks-dev/argocd-values.yaml", "environments/dev/applicationset.yaml"):
        assert ref in text
        assert "dev-healthy" in (REPO / ref).read_text(), f"{ref} no longer sends or subscribes to dev-healthy"


def test_build_publishes_multi_arch_images_with_sbom_and_provenance_and_gates_on_critical():
    wf = load(GITHUB / "workflows" / "build.yaml")
    assert wf["on"]["push"] == {"branches": ["main"], "paths": ["apps/**"]}
    image = wf["jobs"]["image"]
    by_action = {s["uses"].split("@")[0]: s for s in image["steps"] if "uses" in s}
    for action in ("docker/setup-qemu-action", "docker/setup-buildx-action", "docker/login-action"):
        assert action in by_action
    build = by_action["docker/build-push-action"]["with"]
    assert build["platforms"] == "linux/amd64,linux/arm64"
    assert build["sbom"] is True and build["provenance"] == "mode=max" and build["push"] is True
    trivy = by_action["aquasecurity/trivy-action"]["with"]
    assert trivy["severity"] == "CRITICAL" and trivy["exit-code"] == "1"
    order = [s.get("uses", s.get("run", "")).split("@")[0].split(" ")[0:2] for s in image["steps"]]
    flat = [" ".join(o) for o in order]
    assert flat.index("aquasecurity/trivy-action") < flat.index(".venv/bin/gitops bump"), "scan before bump"
    assert image["strategy"]["matrix"]["include"] == "${{ fromJSON(needs.changes.outputs.apps) }}"


def test_ci_caches_the_toolchain_on_its_pins_and_comments_the_diff():
    action = yaml.safe_load((GITHUB / "actions" / "setup" / "action.yml").read_text())
    (cache,) = [s for s in action["runs"]["steps"] if str(s.get("uses", "")).startswith("actions/cache@")]
    assert "hashFiles('scripts/src/gitops/toolchain/versions.toml')" in cache["with"]["key"]
    assert cache["with"]["path"] == "~/.cache/gitops-toolchain"
    ci = load(GITHUB / "workflows" / "ci.yaml")
    assert set(ci["on"]) == {"pull_request"}
    runs = {name: [s.get("run", "") for s in job["steps"]] for name, job in ci["jobs"].items()}
    assert "make lint" in runs["lint"]
    assert ".venv/bin/gitops validate --live" in runs["validate-live"]
    assert "make validate" in runs["validate-static"]
    assert any(r.startswith(".venv/bin/gitops diff ") for r in runs["rendered-diff"])
    sticky = [s for s in ci["jobs"]["rendered-diff"]["steps"] if "sticky-pull-request-comment" in str(s.get("uses"))]
    assert sticky and sticky[0]["with"]["header"] == "rendered-diff"


def test_codeowners_guard_prod_platform_and_clusters():
    rules = {
        line.split()[0]: line.split()[1:]
        for line in (GITHUB / "CODEOWNERS").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    for path in ("environments/prod/**", "platform/**", "clusters/**"):
        assert rules.get(path) == ["@azurelaboratory/platform-team"], path


# -- the verbs the workflows call, on real repositories ----------------------------------------------------------


def test_changed_apps_lists_only_apps_whose_folder_changed(repo, tmp_path, monkeypatch):
    import json

    base = repo.head()
    repo.commit_all("docs only")
    assert json.loads(repo.ok("changed-apps", base, "HEAD", "--format", "json")) == []

    repo.app_commit("pod-details: a change")
    head = repo.head()
    output = tmp_path / "github-output"
    monkeypatch.setenv("GITHUB_OUTPUT", str(output))
    proc = repo.gitops("changed-apps", base, head, "--format", "json", "--github-output", "apps")
    assert proc.returncode == 0, proc.stderr
    (entry,) = json.loads(proc.stdout)
    assert entry["app"] == "pod-details" and entry["context"] == "apps/pod-details"
    assert entry["image"] == "docker.io/azurelaboratory/pod-details"
    assert entry["tag"] == f"{entry['version']}-{head[:7]}"
    assert output.read_text() == f"apps={proc.stdout.strip()}\n"

    # A new branch or a force push: the base is unknown, so every buildable app is built.
    everything = json.loads(repo.ok("changed-apps", "0" * 40, head, "--format", "json"))
    assert [e["app"] for e in everything] == ["pod-details"]


def test_push_rebases_onto_a_remote_that_moved(repo, clone_repo, tmp_path):
    remote = tmp_path / "remote.git"
    subprocess.run(["git", "clone", "--quiet", "--bare", str(repo.path), str(remote)], check=True)
    repo.git("remote", "set-url", "origin", str(remote))
    other = clone_repo(remote, tmp_path / "other")
    other.commit_all("someone merged a PR meanwhile", author="Someone")
    other.git("push", "--quiet", "origin", "HEAD:main")
    repo.commit_all("bump(dev): our build", author="Builder Bot")

    out = repo.ok("push", "--remote", "origin", "--branch", "main")

    assert "pushed" in out
    log = subprocess.run(
        ["git", "-C", str(remote), "log", "--format=%s", "-2", "main"], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert log == ["bump(dev): our build", "someone merged a PR meanwhile"]


def test_diff_shows_only_what_changes_and_fits_a_comment(repo, helm):
    base = repo.head()
    repo.bump("0.2.0")

    text = repo.ok("diff", base, "HEAD")
    assert "+          tag: 0.2.0" in text
    assert "pod-details-prod" not in text, "prod did not change: no lines of it in the diff"
    assert "=== dev: 2 rendered file(s) change\n" in text, "a heading per environment"
    assert "--- dev / pod-details (Application pod-details-dev)\n" in text, "and per app"
    assert "--- dev / the Applications of dev (its ApplicationSet's output)\n" in text
    assert repo.ok("diff", base, "HEAD", "--env", "prod") == "=== prod: no change\n"

    markdown = repo.ok("diff", base, "HEAD", "--format", "markdown")
    assert "changes in `dev`" in markdown
    assert "### `prod`\n\nNo change in the rendered manifests." in markdown
    assert "```diff" in markdown
