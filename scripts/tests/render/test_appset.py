"""ApplicationSet expansion: Argo CD's git files generator and Go-template semantics, on small real git repos."""

from __future__ import annotations

from pathlib import Path

from gitops import git
from gitops import model as repomodel
from gitops.render import appset

APPSET = """\
apiVersion: argoproj.io/v1alpha1
kind: ApplicationSet
metadata:
  name: {env}
  namespace: argocd
spec:
  goTemplate: true
  goTemplateOptions: ["missingkey=error"]
  generators:
    - git:
        repoURL: https://github.com/azurelaboratory/gitops-monorepo.git
        revision: main
        files:
          - path: environments/{env}/*/release.yaml
  syncPolicy:
    preserveResourcesOnDeletion: {preserve}
  template:
    metadata:
      name: '{{{{ .path.basename }}}}-{env}'
    spec:
      project: apps
      sources:
        - repoURL: https://github.com/azurelaboratory/gitops-monorepo.git
          path: 'apps/{{{{ .path.basename }}}}/chart'
          targetRevision: '{{{{ .chart.revision }}}}'
          helm:
            valueFiles:
              - '$values/environments/{env}/{{{{ .path.basename }}}}/values.yaml'
            valuesObject:
              image:
                tag: '{{{{ .image.tag }}}}'
        - repoURL: https://github.com/azurelaboratory/gitops-monorepo.git
          targetRevision: main
          ref: values
      destination:
        server: https://kubernetes.default.svc
        namespace: apps-{env}
"""


def release(tag: str = '"1.2.3"', revision: str = "main") -> str:
    return f'image:\n  repository: docker.io/x/y\n  tag: {tag}\n  digest: ""\nchart:\n  revision: {revision}\n'


def base_files(apps=("alpha", "beta"), preserve: str = "false") -> dict[str, str]:
    files = {
        "environments/promotion.yaml": "order: [dev]\n",
        "environments/dev/env.yaml": "name: dev\ncluster: c\nnamespace: apps-dev\ndomain: example.com\n",
    }
    files["environments/dev/applicationset.yaml"] = APPSET.format(env="dev", preserve=preserve)
    for app in apps:
        files[f"apps/{app}/chart/Chart.yaml"] = f"apiVersion: v2\nname: {app}\nversion: 0.1.0\n"
        files[f"environments/dev/{app}/release.yaml"] = release()
        files[f"environments/dev/{app}/values.yaml"] = "{}\n"
    return files


def expand(root: Path) -> appset.Expansion:
    model = repomodel.load(root)
    return appset.expand(model, model.environments["dev"])


def test_one_application_per_release_file_sorted_with_path_parameters(small_repo):
    root = small_repo(base_files(apps=("beta", "alpha")))
    out = expand(root)
    assert out.problems == []
    assert [a.name for a in out.applications] == ["alpha-dev", "beta-dev"]
    a = out.applications[0]
    assert a.app == "alpha"
    assert a.params_file == "environments/dev/alpha/release.yaml"
    chart, values = a.sources
    assert chart["path"] == "apps/alpha/chart"
    assert chart["targetRevision"] == "main"
    assert chart["helm"]["valueFiles"] == ["$values/environments/dev/alpha/values.yaml"]
    assert chart["helm"]["valuesObject"] == {"image": {"tag": "1.2.3"}}
    assert values == {
        "repoURL": "https://github.com/azurelaboratory/gitops-monorepo.git",
        "targetRevision": "main",
        "ref": "values",
    }
    # Created in the ApplicationSet's namespace, with Argo CD's finalizer unless resources are preserved.
    assert a.manifest["metadata"]["namespace"] == "argocd"
    assert a.manifest["metadata"]["finalizers"] == ["resources-finalizer.argocd.argoproj.io"]
    assert a.destination_namespace == "apps-dev"


def test_preserved_resources_mean_no_finalizer(small_repo):
    out = expand(small_repo(base_files(preserve="true")))
    assert all("finalizers" not in a.manifest["metadata"] for a in out.applications)


def test_a_missing_key_is_an_error_naming_the_template_the_key_and_the_line(small_repo):
    files = base_files(apps=("alpha",))
    text = files["environments/dev/applicationset.yaml"].replace(".chart.revision", ".chart.revison")
    files["environments/dev/applicationset.yaml"] = text
    out = expand(small_repo(files))
    assert out.applications == []
    (p,) = out.problems
    assert p.file == "environments/dev/applicationset.yaml"
    assert p.line == 1 + text.splitlines().index("          targetRevision: '{{ .chart.revison }}'")
    assert p.app == "alpha"
    assert "{{ .chart.revison }}" in p.message
    assert 'map has no entry for key "revison"' in p.message
    assert "environments/dev/alpha/release.yaml" in p.message


def test_functions_and_pipelines_are_refused_not_approximated(small_repo):
    files = base_files(apps=("alpha",))
    files["environments/dev/applicationset.yaml"] = files["environments/dev/applicationset.yaml"].replace(
        "'{{ .path.basename }}-dev'", "'{{ .path.basename | upper }}-dev'"
    )
    (p,) = expand(small_repo(files)).problems
    assert "unsupported template expression {{ .path.basename | upper }}" in p.message


def test_the_glob_matches_like_git_ls_files_star_crosses_slashes(small_repo):
    files = base_files(apps=("alpha",))
    files["environments/dev/alpha/nested/release.yaml"] = release()
    root = small_repo(files)
    snap = git.WorkTree(root)
    assert snap.glob("environments/dev/*/release.yaml") == [
        "environments/dev/alpha/nested/release.yaml",
        "environments/dev/alpha/release.yaml",
    ]


def test_generator_reads_untracked_files_of_the_work_tree_and_commits_with_ref(small_repo):
    root = small_repo(base_files(apps=("alpha",)))
    (root / "apps/gamma/chart").mkdir(parents=True)
    (root / "apps/gamma/chart/Chart.yaml").write_text("apiVersion: v2\nname: gamma\nversion: 0.1.0\n")
    (root / "environments/dev/gamma").mkdir()
    (root / "environments/dev/gamma/release.yaml").write_text(release())
    assert [a.name for a in expand(root).applications] == ["alpha-dev", "gamma-dev"]
    model = repomodel.load(root, "HEAD")
    assert [a.name for a in appset.expand(model, model.environments["dev"]).applications] == ["alpha-dev"]


def test_numbers_print_the_way_go_prints_float64(small_repo):
    # YAML `tag: 1.10` is the number 1.1 to Argo CD (JSON decoding): the render shows what Argo CD would do.
    files = base_files(apps=("alpha",))
    files["environments/dev/alpha/release.yaml"] = release(tag="1.10")
    (a,) = expand(small_repo(files)).applications
    assert a.sources[0]["helm"]["valuesObject"]["image"]["tag"] == "1.1"


def test_basename_normalized_is_argo_cds_sanitize_name():
    params = appset.path_params("environments/dev/My_App.v2/release.yaml")
    assert params == {
        "path": "environments/dev/My_App.v2",
        "basename": "My_App.v2",
        "filename": "release.yaml",
        "basenameNormalized": "my-app.v2",
        "filenameNormalized": "release.yaml",
        "segments": ["environments", "dev", "My_App.v2"],
    }
