"""Upstream charts: fetched from their Go modules as their releases publish them, pinned by digest, resolved for the
Applications that name them (gitops.toolchain.charts, gitops.render.upstream, gitops.checks.chartvalues).

Everything runs on the real charts: the ones `make tools` put in the cache, or a fresh fetch of the same modules from
the Go module cache (offline: the module proxy is replaced by the module cache itself, so nothing is downloaded here).
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from gitops.checks import chartvalues as chart_values
from gitops.render import upstream as upstream_charts
from gitops.toolchain import chart_sources
from gitops.toolchain.build import BuildFailed, module_info
from gitops.toolchain.charts import ChartUnusable, cached, fetch, tree_digest

OBTAINABLE = [name for name, source in chart_sources().items() if not source.unavailable]


@pytest.fixture
def offline(monkeypatch, tmp_path: Path) -> Path:
    """A private toolchain cache, and the Go module cache as the only module proxy: a fetch reads what `make tools`
    downloaded, and a version that is not there is "not found", as the proxy says of one that does not exist."""
    gomodcache = subprocess.run(["go", "env", "GOMODCACHE"], capture_output=True, text=True, check=True).stdout.strip()
    monkeypatch.setenv("GOPROXY", f"file://{gomodcache}/cache/download")
    monkeypatch.setenv("GOSUMDB", "off")  # the checksum database is online; the module cache was verified on download
    monkeypatch.setenv("GITOPS_TOOLCHAIN_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_the_digest_is_gos_h1_hash(upstream_chart_cache):
    """On a module directory with its path@version as prefix, tree_digest is exactly the go.sum hash of the module."""
    source = chart_sources()["metrics-server"]
    info = module_info(source.module, source.version, Path("/tmp"))
    assert tree_digest(Path(info["Dir"]), f"{source.module}@{source.version}") == info["Sum"]


@pytest.mark.parametrize("name", OBTAINABLE)
def test_the_cache_holds_each_pinned_chart_at_its_version(upstream_chart_cache, name: str):
    source = chart_sources()[name]
    chart = yaml.safe_load((cached(source) / "Chart.yaml").read_text())
    assert (chart["name"], str(chart["version"])) == (source.chart, source.chart_version)


def test_cert_managers_chart_is_filled_in_as_its_release_does(upstream_chart_cache):
    source = chart_sources()["cert-manager"]
    chart_dir = cached(source)
    chart = yaml.safe_load((chart_dir / "Chart.yaml").read_text())
    assert chart["version"] == chart["appVersion"] == source.version  # git says v0.0.0
    assert chart["annotations"]["artifacthub.io/prerelease"] == "false"
    assert chart["annotations"]["artifacthub.io/signKey"].startswith("fingerprint: ")
    readme = (chart_dir / "README.md").read_text()
    assert "{{RELEASE_VERSION}}" not in readme and f"--version {source.version}" in readme
    # What the release packs, and nothing else: not the chart's tests, not the template of its README.
    assert sorted(p.name for p in chart_dir.iterdir()) == [
        ".helmignore",
        "Chart.yaml",
        "README.md",
        "templates",
        "values.schema.json",
        "values.yaml",
    ]


def test_a_fetch_reproduces_the_recorded_digest_and_repairs_a_tampered_cache(offline: Path):
    source = chart_sources()["metrics-server"]
    assert fetch(source) == source.digest
    values = source.chart_dir / "values.yaml"
    values.chmod(0o644)
    values.write_text(values.read_text() + "extra: true\n")
    with pytest.raises(ChartUnusable, match=r"holds a different chart .* run `make tools`"):
        cached(source)
    assert fetch(source) == source.digest  # `make tools` fetches the pinned chart again
    assert cached(source) == source.chart_dir


def test_an_unfetched_chart_says_how_to_get_it(offline: Path):
    with pytest.raises(ChartUnusable, match=r"chart cert-manager v1\.21\.2 .* is not fetched .* run `make tools`"):
        cached(chart_sources()["cert-manager"])


def test_a_module_version_that_does_not_exist_fails_the_fetch_naming_it(offline: Path):
    source = dataclasses.replace(chart_sources()["cert-manager"], version="v1.21.99")
    with pytest.raises(BuildFailed, match=r"cannot be fetched: the module proxy has no .*cert-manager@v1\.21\.99 \("):
        fetch(source)
    assert not source.home.exists()


def test_a_digest_other_than_the_recorded_one_is_refused(offline: Path):
    source = dataclasses.replace(chart_sources()["metrics-server"], digest="h1:" + "A" * 43 + "=")
    with pytest.raises(BuildFailed, match=r"\[charts\.metrics-server\]: the chart fetched from .* has digest h1:"):
        fetch(source)
    unrecorded = dataclasses.replace(source, digest="")
    with pytest.raises(BuildFailed, match=r'no digest recorded.*digest = "h1:'):
        fetch(unrecorded)
    assert not source.home.exists()


def test_a_module_that_ships_another_chart_version_is_refused(offline: Path):
    source = dataclasses.replace(chart_sources()["metrics-server"], chart_version="3.13.2")
    with pytest.raises(BuildFailed, match=r"holds chart metrics-server 3\.13\.1, not metrics-server 3\.13\.2"):
        fetch(source)


def test_a_changed_release_recipe_is_refused(offline: Path, tmp_path: Path):
    """The cert-manager recipe follows make/manifests.mk; a module whose recipe reads otherwise is not assembled."""
    from gitops.toolchain import charts

    source = chart_sources()["cert-manager"]
    real = Path(module_info(source.module, source.version, tmp_path)["Dir"])
    fake = tmp_path / "module"
    shutil.copytree(real / source.path, fake / source.path)
    (fake / "make").mkdir()
    recipe = (real / "make/manifests.mk").read_text().replace('.version = "$(VERSION)"', '.version = "$(CHART)"')
    (fake / "make/manifests.mk").write_text(recipe)
    with pytest.raises(BuildFailed, match=r"no longer reads as the release recipe"):
        charts.RELEASES["cert-manager"](fake, source, tmp_path / "out")


# -- which chart an Application's source means ------------------------------------------------------------------------


def source(chart: str, revision: str, repo_url: str) -> dict:
    return {"repoURL": repo_url, "chart": chart, "targetRevision": revision}


def test_a_pinned_chart_resolves_to_its_cached_copy(upstream_chart_cache):
    pin = chart_sources()["cert-manager"]
    found = upstream_charts.resolve(source("cert-manager", "v1.21.2", "https://charts.jetstack.io/"))
    assert found.chart_dir == pin.chart_dir and not found.problem and not found.note
    assert found.label == "github.com/cert-manager/cert-manager@v1.21.2/deploy/charts/cert-manager"


@pytest.mark.parametrize("name", [n for n, s in chart_sources().items() if s.unavailable])
def test_a_chart_that_cannot_be_had_here_is_named_not_silently_passed(name: str):
    pin = chart_sources()[name]
    found = upstream_charts.resolve(source(pin.chart, pin.chart_version, pin.repo_url))
    assert found.chart_dir is None and not found.problem
    assert found.note.startswith(upstream_charts.NOT_CHECKED)
    assert f"chart {pin.chart} {pin.chart_version}" in found.note and pin.unavailable in found.note


def test_a_version_or_chart_nobody_pinned_is_a_problem():
    found = upstream_charts.resolve(source("cert-manager", "v1.22.0", "https://charts.jetstack.io"))
    assert "no such version is pinned" in found.problem and "v1.21.2 ([charts.cert-manager])" in found.problem
    found = upstream_charts.resolve(source("ingress-nginx", "4.0.0", "https://kubernetes.github.io/ingress-nginx"))
    assert "is not pinned in the toolchain's versions.toml" in found.problem


# -- values against a chart's defaults ------------------------------------------------------------------------------


def test_what_the_templates_copy_out_whole_is_free_form(upstream_chart_cache):
    whole = chart_values.passed_whole(cached(chart_sources()["metrics-server"]))
    # `with .Values.resources` + `toYaml .`, `toYaml .Values.tmpVolume`, `with .Values.podAnnotations` ...
    assert {("resources",), ("tmpVolume",), ("securityContext",), ("podAnnotations",)} <= whole
    assert ("podDisruptionBudget",) not in whole  # read key by key: its keys are checked


def test_unknown_keys_and_kinds_against_the_defaults():
    defaults = {
        "replicas": 1,
        "pdb": {"enabled": False, "maxUnavailable": None},
        "resources": {"requests": {"cpu": "100m"}},
        "podLabels": {},
        "args": [],
    }
    user = {
        "replicas": "two",
        "pdb": {"enabld": True, "maxUnavailable": "50%"},
        "resources": {"limits": {"cpu": 1}},
        "podLabels": {"team": "platform"},
        "args": {"--x": 1},
        "global": {"anything": True},
        "extra": 1,
    }
    found = dict(
        ("/".join(keys), message) for keys, message in chart_values.unknown_keys(user, defaults, {("resources",)})
    )
    assert sorted(found) == ["args", "extra", "pdb/enabld", "replicas"]
    assert found["pdb/enabld"].startswith("unknown key 'enabld': did you mean enabled?")
    assert found["replicas"] == 'expected a number (the chart\'s default is 1), got a string: "two"'
    assert found["args"].startswith("expected a list")
