"""`gitops validate`'s result cache, against real helm, kubeconform and yamllint on real git repositories: a warm run
reports exactly what a cold run does, a change renders and checks again only what it affects, and whatever a result
depends on (a tool, the schema set) is part of its key."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gitops.checks import cache as result_cache
from gitops.checks.validate import Report, validate
from gitops.toolchain import schemas, tool_path
from gitops_testing import sandbox

PROD = "environments/prod/pod-details"
OTHER_DEV = "environments/dev/other"
PLATFORM_FILE = "platform/metrics-server/metrics-server.yaml"


def add_app(root: Path, name: str) -> None:
    """A second app: pod-details' chart and overlays under another name, committed, and promoted to prod."""
    shutil.copytree(root / "apps/pod-details/chart", root / f"apps/{name}/chart")
    for env in ("dev", "prod"):
        shutil.copytree(root / f"environments/{env}/pod-details", root / f"environments/{env}/{name}")
        values = root / f"environments/{env}/{name}/values.yaml"
        values.write_text(values.read_text().replace("pod-details-", f"{name}-"))
    head = sandbox.commit(root, f"add {name}")
    sandbox.copy_charts(root, "prod", head)
    sandbox.commit(root, f"promote {name}'s chart to prod")


def break_three_ways(root: Path) -> None:
    """A finding for each cached check: values-schema (a render), kubeconform (a document) and yamllint (a file)."""
    overlay = root / PROD / "values.yaml"  # prod: dev's render must succeed, for kubeconform to see its Deployment
    overlay.write_text(overlay.read_text() + "replicaCont: 2\n")
    template = root / "apps/pod-details/chart/templates/deployment.yaml"
    template.write_text(
        template.read_text().replace("  revisionHistoryLimit: 5\n", "  revisionHistoryLimit: 5\n  replicaz: 2\n", 1)
    )
    platform = root / PLATFORM_FILE
    platform.write_text(platform.read_text() + "# trailing spaces   \n")


def computed(report: Report) -> dict[str, int]:
    return {k: v for k, v in report.stats.items() if k.endswith("_computed")}


def cached(report: Report) -> dict[str, int]:
    return {k: v for k, v in report.stats.items() if k.endswith("_cached")}


def test_a_warm_run_reports_exactly_what_a_cold_run_reports(repo, helm, upstream_chart_cache, cache_dir):
    """Findings are results too: a warm run reports them again, in the same order, without running anything."""
    break_three_ways(repo.path)
    cold = validate(repo.path)
    assert {"values-schema", "kubeconform", "yamllint"} <= {f.check for f in cold.findings}, cold.findings
    assert all(n == 0 for n in cached(cold).values()) and all(n > 0 for n in computed(cold).values()), cold.stats

    warm = validate(repo.path)
    assert all(n == 0 for n in computed(warm).values()), warm.stats
    assert cached(warm) == {k.replace("_computed", "_cached"): v for k, v in computed(cold).items()}
    assert warm.findings == cold.findings
    assert warm.notes == cold.notes
    assert not warm.ok

    uncached = validate(repo.path, cache=False)
    assert uncached.findings == cold.findings
    assert not cached(uncached) and not computed(uncached)


def test_changing_one_apps_overlay_renders_and_checks_only_that_app_again(repo, helm, upstream_chart_cache):
    add_app(repo.path, "other")
    first = validate(repo.path)
    assert first.ok, first.findings

    overlay = repo.path / OTHER_DEV / "values.yaml"
    clean = overlay.read_text()
    overlay.write_text(clean + "replicaCont: 2\n")
    changed = validate(repo.path)
    assert changed.stats["render_computed"] == 1, changed.stats  # dev/other; dev/pod-details, prod and platform cached
    assert changed.stats["render_cached"] == first.stats["render_computed"] - 1
    assert changed.stats["yamllint_computed"] == 1
    assert [(f.check, f.env, f.app) for f in changed.findings] == [("values-schema", "dev", "other")], changed.findings
    assert changed.findings == validate(repo.path, cache=False).findings

    overlay.write_text(clean.replace("progressDeadlineSeconds: 60", "progressDeadlineSeconds: 90"))
    edited = validate(repo.path)
    assert edited.ok, edited.findings
    assert edited.stats["render_computed"] == 1
    # Only what the change made different is checked again: dev/other's Deployment, nothing else.
    assert edited.stats["kubeconform_computed"] == 1, edited.stats

    overlay.write_text(clean)  # back as it was: content-addressed, so everything is a hit again
    again = validate(repo.path)
    assert again.ok and not any(computed(again).values()), again.stats


def test_another_helm_or_kubeconform_renders_and_checks_everything_again(
    repo, helm, upstream_chart_cache, tmp_path, monkeypatch
):
    """A tool is known by its place in the toolchain cache (one folder per pinned version and build): another
    helm, or another kubeconform, and nothing cached before is reused."""
    break_three_ways(repo.path)
    cold = validate(repo.path)

    other = {}
    for name in ("helm", "kubeconform"):
        other[name] = tmp_path / "toolchain" / name / "v0.0.0-other" / "bin" / name
        other[name].parent.mkdir(parents=True)
        shutil.copy2(tool_path(name), other[name])
    monkeypatch.setattr("gitops.render.helm.tool_path", lambda name: other.get(name) or tool_path(name))
    again = validate(repo.path)
    assert again.stats["render_cached"] == 0 and again.stats["render_computed"] == cold.stats["render_computed"]
    # The same binary under another name renders the same documents: their verdicts are still good, and kept.
    assert again.stats["kubeconform_computed"] == 0, again.stats
    assert again.findings == cold.findings

    monkeypatch.setattr("gitops.checks.kubeconform.tool_path", lambda name: other.get(name) or tool_path(name))
    last = validate(repo.path)
    assert last.stats["render_computed"] == 0
    assert last.stats["kubeconform_cached"] == 0 and last.stats["kubeconform_computed"] > 0, last.stats
    assert last.findings == cold.findings


def test_another_schema_set_checks_every_document_again(repo, helm, upstream_chart_cache, tmp_path, monkeypatch):
    """A pass is not carried over to a schema set that would fail it: here one in which a Deployment may not set
    progressDeadlineSeconds (the chart sets it in every environment)."""
    first = validate(repo.path)
    assert first.ok, first.findings

    copy = tmp_path / "schemas"
    shutil.copytree(schemas.ensure_schemas(), copy)
    deployment = copy / schemas.builtin_dir(copy).name / "deployment-apps-v1.json"
    schema = json.loads(deployment.read_text())
    del schema["definitions"]["io.k8s.api.apps.v1.DeploymentSpec"]["properties"]["progressDeadlineSeconds"]
    deployment.write_text(json.dumps(schema))
    real = schemas.schema_locations
    monkeypatch.setattr(schemas, "schema_locations", lambda root=None: real(copy))

    tighter = validate(repo.path)
    assert tighter.stats["kubeconform_cached"] == 0, tighter.stats
    assert tighter.stats["render_computed"] == 0  # the renders do not depend on the schemas
    hits = [f for f in tighter.findings if f.check == "kubeconform" and "progressDeadlineSeconds" in f.message]
    assert [(f.env, f.app, f.kind) for f in hits] == [
        ("dev", "pod-details", "Deployment"),
        ("prod", "pod-details", "Deployment"),
    ], tighter.findings


def test_a_corrupt_entry_is_a_miss_and_is_written_again(repo, helm, upstream_chart_cache, cache_dir):
    break_three_ways(repo.path)
    cold = validate(repo.path)
    entries = sorted(cache_dir.rglob("*.json"))
    assert entries
    for n, path in enumerate(entries):
        text = path.read_text()
        # Cut short (a crash mid-write), valid JSON of the wrong shape, or another key's entry.
        path.write_text([text[: len(text) // 2], '{"key": "x", "value": {}}', '{"value": []}'][n % 3])
    warm = validate(repo.path)
    assert not any(cached(warm).values()), warm.stats
    assert warm.findings == cold.findings
    for path in entries:
        assert json.loads(path.read_text())["key"] == path.stem
    assert not list(cache_dir.rglob(".tmp-*")), "a temporary file was left behind"
    assert validate(repo.path).findings == cold.findings


def test_the_store_writes_whole_entries_and_keys_every_part(tmp_path):
    store = result_cache.Store(tmp_path / "c")
    assert store.get("render", "ab" * 32) is None
    store.put("render", "ab" * 32, {"x": 1})
    assert store.get("render", "ab" * 32) == {"x": 1}
    assert store.stats() == {"render_cached": 1, "render_computed": 1}
    assert result_cache.digest("ab", "c") != result_cache.digest("a", "bc")
    (tmp_path / "c" / "render").chmod(0o500)  # a cache that cannot be written costs time, never the run
    try:
        store.put("render", "cd" * 32, {"x": 2})
    finally:
        (tmp_path / "c" / "render").chmod(0o700)


def test_no_cache_neither_reads_nor_writes_the_cache(repo, helm, upstream_chart_cache, cache_dir):
    def cli(*args: str) -> dict:
        proc = subprocess.run(
            [sys.executable, "-m", "gitops", "validate", "--format", "json", *args],
            cwd=repo.path,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return json.loads(proc.stdout)

    assert "render_computed" not in cli("--no-cache")["stats"]
    assert not cache_dir.exists()
    assert cli()["stats"]["render_computed"] > 0
    assert cli()["stats"]["render_computed"] == 0
    assert cache_dir.is_dir()


@pytest.mark.parametrize("xdg", [True, False])
def test_the_cache_lives_outside_the_repository(monkeypatch, tmp_path, xdg):
    monkeypatch.delenv(result_cache.ENV_VAR)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    if xdg:
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
        assert result_cache.default_root() == tmp_path / "xdg" / "gitops" / "validate"
    else:
        monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
        assert result_cache.default_root() == tmp_path / "home" / ".cache" / "gitops" / "validate"
