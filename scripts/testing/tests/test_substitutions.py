"""What the e2e publishes for Argo CD: the repository URL points at the local copy it serves, nothing else does."""

from __future__ import annotations

from gitops_testing.e2e.substitutions import URL_RE

LOCAL = "file:///tmp/gitops-e2e-x/git/served.git"


def test_the_repository_url_becomes_the_served_copy():
    for url in (
        "https://github.com/azurelaboratory/gitops-monorepo.git",
        "https://github.com/azurelaboratory/gitops-monorepo",
    ):
        assert URL_RE.sub(LOCAL, f"repoURL: {url}\n") == f"repoURL: {LOCAL}\n"
        assert URL_RE.sub(LOCAL, f"- '{url}'") == f"- '{LOCAL}'"


def test_a_link_to_a_page_of_the_repository_is_left_alone():
    for text in (
        "runbookUrl: https://github.com/azurelaboratory/gitops-monorepo/blob/main/docs/runbook.md",
        "home: https://github.com/azurelaboratory/gitops-monorepo/tree/main/apps/pod-details",
        "https://github.com/azurelaboratory/gitops-monorepo-other.git",
    ):
        assert URL_RE.sub(LOCAL, text) == text
