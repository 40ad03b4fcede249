"""The upstream Helm charts the platform's Applications install, fetched the way the toolchain is built.

Chart repositories and OCI registries are out of reach here; the Go module proxy is not, and some projects ship their
chart inside their Go module. ``[charts.<name>]`` in ``versions.toml`` says, for the chart an Application names
(``repo_url``, ``chart``, ``chart_version``), which module directory holds the same chart (``module``, ``version``,
``path``), how its release turns those files into the published chart (``release``), and the ``digest`` of the
result. `make tools` downloads the module through the proxy (checksums verified against the Go checksum database),
assembles the chart into ``<cache>/charts/<name>/<chart_version>/<chart>/`` and refuses a tree whose digest is not
the recorded one; every later use checks the digest again, so a cache holding another chart is an error, not a
silent render of the wrong thing. A chart that cannot be had here carries ``unavailable`` (why) instead, and every
render and validation names it as not checked.

The digest is Go's ``h1:`` directory hash (``golang.org/x/mod/sumdb/dirhash.Hash1``, what go.sum records): the
SHA-256 of the sorted lines ``<sha256 of file>  <chart>/<path>``, base64-encoded.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from gitops.errors import GitopsError
from gitops.toolchain import ChartSource, cache_root, chart_sources


class ChartUnusable(GitopsError):
    """The pinned chart is not in the cache, or the cache holds something else; says what to run."""


def tree_digest(root: Path, prefix: str | None = None) -> str:
    """Go's dirhash ``Hash1`` of the files under ``root``, each named ``<prefix>/<relative path>`` (default prefix:
    the directory's own name). With the module's ``path@version`` as prefix it is the module's go.sum hash."""
    prefix = prefix if prefix is not None else root.name
    files = sorted((f"{prefix}/{p.relative_to(root).as_posix()}", p) for p in root.rglob("*") if p.is_file())
    summary = "".join(f"{hashlib.sha256(path.read_bytes()).hexdigest()}  {name}\n" for name, path in files)
    return "h1:" + base64.b64encode(hashlib.sha256(summary.encode()).digest()).decode()


def cached(source: ChartSource) -> Path:
    """The pinned chart's directory in the cache, after checking it is the recorded chart."""
    where = f"chart {source.chart} {source.chart_version} ([charts.{source.name}] in versions.toml)"
    if not (source.chart_dir / "Chart.yaml").is_file():
        raise ChartUnusable(f"{where} is not fetched (expected {source.chart_dir}); run `make tools`")
    found = tree_digest(source.chart_dir)
    if found != source.digest:
        raise ChartUnusable(
            f"{where}: the cache at {source.chart_dir} holds a different chart (digest {found}, recorded "
            f"{source.digest or 'none'}); run `make tools` to fetch the pinned one again"
        )
    return source.chart_dir


# -- fetching (make tools) -----------------------------------------------------------------------------------------


def fetch(source: ChartSource, force: bool = False) -> str:
    """Fetch one chart into the cache unless the recorded one is there; returns its digest."""
    from gitops.toolchain.build import BuildFailed, log, module_info

    if not force and source.digest and source.chart_dir.is_dir() and tree_digest(source.chart_dir) == source.digest:
        return source.digest
    if not source.version:
        raise BuildFailed(f"[charts.{source.name}]: no module `version` to fetch")
    log(f"chart {source.chart} {source.chart_version}: {source.provenance} via the module proxy")
    work = cache_root() / "_src"
    work.mkdir(parents=True, exist_ok=True)
    try:
        info = module_info(source.module, source.version, work)
    except BuildFailed as e:
        said = re.search(r'"Error": "(.*)"', str(e))
        raise BuildFailed(
            f"[charts.{source.name}]: chart {source.chart} {source.chart_version} cannot be fetched: the module "
            f"proxy has no {source.module}@{source.version} ({said.group(1) if said else e})"
        ) from None
    module_dir = Path(info["Dir"])
    if not (module_dir / source.path / "Chart.yaml").is_file():
        raise BuildFailed(f"[charts.{source.name}]: {source.provenance} has no Chart.yaml")
    source.home.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=source.home.parent, prefix=".tmp-"))
    try:
        target = tmp / source.chart
        try:
            release = RELEASES[source.release]
        except KeyError:
            known = ", ".join(sorted(RELEASES))
            raise BuildFailed(f"[charts.{source.name}]: unknown release {source.release!r}; known: {known}") from None
        release(module_dir, source, target)
        _check_metadata(source, target)
        digest = tree_digest(target)
        if not source.digest:
            raise BuildFailed(
                f"[charts.{source.name}]: no digest recorded. The chart fetched from {source.provenance} has "
                f'digest = "{digest}": review it ({target} is removed now; `go mod download -json '
                f"{source.module}@{source.version}` shows the module's files), then record it in versions.toml"
            )
        if digest != source.digest:
            raise BuildFailed(
                f"[charts.{source.name}]: the chart fetched from {source.provenance} has digest {digest}, "
                f"versions.toml records {source.digest}: the module's files or the release recipe "
                f"({source.release!r}) changed; review before recording the new digest"
            )
        for f in target.rglob("*"):  # the module cache is read-only; the copy need not be, but keep it so
            if f.is_file():
                f.chmod(0o444)
        if source.home.exists():
            shutil.rmtree(source.home)
        os.replace(tmp, source.home)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return digest


def fetch_all(names: list[str] | None = None, force: bool = False) -> list[tuple[ChartSource, str]]:
    """Every pinned chart (or those named): (source, its digest, or why it is not obtainable here)."""
    results = []
    for name, source in chart_sources().items():
        if names is not None and name not in names:
            continue
        if source.unavailable:
            results.append((source, f"not obtainable here: {source.unavailable}"))
        else:
            results.append((source, fetch(source, force)))
    return results


def _check_metadata(source: ChartSource, target: Path) -> None:
    from gitops.toolchain.build import BuildFailed
    from gitops.yamlio import load_fast

    meta = load_fast((target / "Chart.yaml").read_text()) or {}
    got = (str(meta.get("name")), str(meta.get("version")))
    if got != (source.chart, source.chart_version):
        raise BuildFailed(
            f"[charts.{source.name}]: {source.provenance} holds chart {got[0]} {got[1]}, not "
            f"{source.chart} {source.chart_version}: pick the module version that ships it"
        )


# -- how each project makes its published chart from its module's files ------------------------------------------


def _as_is(module_dir: Path, source: ChartSource, target: Path) -> None:
    """The directory as committed at the tag: what `helm package <dir>` (chart-releaser) publishes. The chart's
    .helmignore is honoured by helm when it loads the directory, as `helm package` honours it when it packs."""
    shutil.copytree(module_dir / source.path, target)


# cert-manager's chart in git is a template its release fills in: `make release-manifests` (make/manifests.mk at the
# release tag) copies these files into a build directory, edits Chart.yaml with yq and writes README.md with sed,
# then runs `helm package --version=$(VERSION) --app-version=$(VERSION)`. $(VERSION) is `git describe` at the tag:
# the module version. The lines below are what that recipe says at the pinned tag; a release whose recipe reads
# otherwise is refused, so a bump cannot silently assemble a chart the project would not publish.
CERT_MANAGER_RECIPE = (
    "HELM_TEMPLATE_SOURCES=$(wildcard deploy/charts/cert-manager/templates/*.yaml)",
    "$(bin_dir)/cert-manager-$(VERSION).tgz: $(bin_dir)/helm/cert-manager/README.md "
    "$(bin_dir)/helm/cert-manager/Chart.yaml $(bin_dir)/helm/cert-manager/values.yaml "
    "$(bin_dir)/helm/cert-manager/values.schema.json $(HELM_TEMPLATE_TARGETS) "
    "$(bin_dir)/helm/cert-manager/templates/NOTES.txt $(bin_dir)/helm/cert-manager/templates/_helpers.tpl "
    "$(bin_dir)/helm/cert-manager/.helmignore",
    '\'.annotations."artifacthub.io/signKey" = strenv(SIGNKEY_ANNOTATION) | .annotations."artifacthub.io/prerelease" '
    '= "$(IS_PRERELEASE)" | .version = "$(VERSION)" | .appVersion = "$(VERSION)"\'',
    'sed -e "s:{{RELEASE_VERSION}}:$(VERSION):g" < $< > $@',
    "$(HELM) package --app-version=$(VERSION) --version=$(VERSION)",
)


def _cert_manager(module_dir: Path, source: ChartSource, target: Path) -> None:
    from ruamel.yaml.scalarstring import LiteralScalarString

    from gitops.toolchain.build import BuildFailed
    from gitops.yamlio import round_trip

    makefile = (module_dir / "make/manifests.mk").read_text()
    changed = [line for line in CERT_MANAGER_RECIPE if line not in makefile]
    if changed:
        raise BuildFailed(
            f"[charts.{source.name}]: make/manifests.mk at {source.version} no longer reads as the release recipe "
            f"gitops.toolchain.charts follows (missing: {changed[0]!r}); review it and update the recipe"
        )
    src = module_dir / source.path
    version = source.version
    (target / "templates").mkdir(parents=True)
    for template in sorted((src / "templates").glob("*.yaml")):
        shutil.copyfile(template, target / "templates" / template.name)
    for rel in ("templates/NOTES.txt", "templates/_helpers.tpl", "values.yaml", "values.schema.json", ".helmignore"):
        shutil.copyfile(src / rel, target / rel)
    readme = (src / "README.template.md").read_text().replace("{{RELEASE_VERSION}}", version)
    (target / "README.md").write_text(readme)
    # git describe --abbrev=0 at the tag prints the tag: a pre-release is a tag with a hyphen (v1.22.0-alpha.1).
    prerelease = "true" if "-" in version else "false"
    y = round_trip()
    chart = y.load((src / "Chart.yaml").read_text())
    if not isinstance(chart, dict):
        raise BuildFailed(f"[charts.{source.name}]: {source.provenance}/Chart.yaml is not a mapping")
    annotations = chart.setdefault("annotations", {})
    annotations["artifacthub.io/signKey"] = LiteralScalarString((src / "signkey_annotation.txt").read_text())
    annotations["artifacthub.io/prerelease"] = prerelease
    chart["version"] = version
    chart["appVersion"] = version
    with (target / "Chart.yaml").open("w") as f:
        y.dump(chart, f)


RELEASES: dict[str, Callable[[Path, ChartSource, Path], None]] = {
    "as-is": _as_is,
    "cert-manager": _cert_manager,
}
