"""The promotion gate's notification, as clusters/aks-dev/argocd-values.yaml declares it, evaluated and sent by the
pinned Argo CD itself (`argocd admin notifications trigger run` / `template notify`, the notifications controller's
own engine) to the e2e's GitHub API stand-in, which checks the request against GitHub's published description.

The trigger must fire only for an image Argo CD has compared, synced and found healthy: the ApplicationSet changes
an Application's spec before Argo CD has looked at it, and the status then still describes the previous image (`make
e2e` caught the gate announcing an image that never got ready that way). `make e2e` runs the same configuration in
the real controller against real clusters; these cases pin each state down in a second.
"""

from __future__ import annotations

import copy
import subprocess
from pathlib import Path

import pytest
import yaml

from gitops_testing.e2e.github import GitHubAPI
from gitops_testing.e2e.notifications import Notifications

REPO = Path(__file__).resolve().parents[3]
VALUES = [REPO / "clusters/argocd-values.yaml", REPO / "clusters/aks-dev/argocd-values.yaml"]
APPSET = REPO / "environments/dev/applicationset.yaml"
REPO_URL = "https://github.com/azurelaboratory/gitops-monorepo.git"
SHA = "a" * 40
NEW = {"repository": "docker.io/azurelaboratory/pod-details", "tag": "0.2.0", "digest": "sha256:" + "2" * 64}
OLD = {"repository": "docker.io/azurelaboratory/pod-details", "tag": "0.1.0", "digest": "sha256:" + "1" * 64}


@pytest.fixture
def github():
    api = GitHubAPI("azurelaboratory/gitops-monorepo")
    api.start()
    try:
        yield api
    finally:
        api.stop()


@pytest.fixture
def config(tmp_path: Path, github: GitHubAPI) -> Path:
    """argocd-notifications-cm and its Secret as the e2e gives the controller; a kubeconfig to nowhere (the CLI
    looks the AppProject up for its templates' context and carries on without it)."""
    n = Notifications.from_values([yaml.safe_load(p.read_text()) for p in VALUES], github.url, str(VALUES[1]))
    assert n.enabled and n.github_authorization
    github.authorizations.add(n.github_authorization)
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "argocd-notifications-cm"}, "data": n.cm}
    secret = n.secret_manifest("argocd")
    (tmp_path / "cm.yaml").write_text(yaml.safe_dump(cm))
    (tmp_path / "secret.yaml").write_text(yaml.safe_dump(secret))
    (tmp_path / "kubeconfig").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "none", "cluster": {"server": "https://127.0.0.1:1"}}],
                "users": [{"name": "none", "user": {"token": "none"}}],
                "contexts": [{"name": "none", "context": {"cluster": "none", "user": "none", "namespace": "argocd"}}],
                "current-context": "none",
            }
        )
    )
    return tmp_path


def admin(argocd: Path, config: Path, app: dict, *args: str) -> str:
    (config / "app.yaml").write_text(yaml.safe_dump(app))
    cmd = [str(argocd), "admin", "notifications", *args, str(config / "app.yaml")]
    cmd += ["--config-map", str(config / "cm.yaml"), "--secret", str(config / "secret.yaml")]
    env = {"HOME": str(config), "KUBECONFIG": str(config / "kubeconfig"), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return proc.stdout


def sources(image: dict) -> list[dict]:
    chart = {"repoURL": REPO_URL, "path": "apps/pod-details/chart", "targetRevision": "main"}
    chart["helm"] = {"releaseName": "pod-details", "valuesObject": {"image": image}}
    return [chart, {"repoURL": REPO_URL, "targetRevision": "main", "ref": "values"}]


def application(spec_image=NEW, compared=NEW, synced=NEW, sync="Synced", health="Healthy", phase="Succeeded"):
    """pod-details-dev as dev's ApplicationSet generates it, with the status Argo CD would write."""
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {
            "name": "pod-details-dev",
            "namespace": "argocd",
            "labels": {"app.kubernetes.io/name": "pod-details"},
        },
        "spec": {
            "project": "apps",
            "sources": sources(spec_image),
            "destination": {"server": "https://kubernetes.default.svc", "namespace": "apps-dev"},
        },
        "status": {
            "sync": {"status": sync, "revisions": [SHA, SHA], "comparedTo": {"sources": sources(compared)}},
            "health": {"status": health},
            "operationState": {"phase": phase, "syncResult": {"revisions": [SHA, SHA], "sources": sources(synced)}},
        },
    }


@pytest.mark.parametrize(
    ("app", "fires"),
    [
        (application(), True),
        # The ApplicationSet has just written the next image; Argo CD has not compared or synced it yet.
        (application(compared=OLD, synced=OLD), False),
        # Compared (OutOfSync would follow) but the last sync was still the previous image.
        (application(synced=OLD), False),
        (application(health="Progressing"), False),
        (application(health="Degraded"), False),
        (application(sync="OutOfSync"), False),
        (application(phase="Running"), False),
        (application(phase="Failed"), False),
    ],
    ids=["healthy", "spec-ahead", "sync-behind", "progressing", "degraded", "out-of-sync", "syncing", "sync-failed"],
)
def test_on_dev_healthy_fires_only_for_the_image_argo_cd_synced_and_found_healthy(argocd, config, app, fires):
    out = admin(argocd, config, app, "trigger", "run", "on-dev-healthy")
    result = out.strip().splitlines()[-1].split()[-1]
    assert result == ("true" if fires else "false"), out


def test_dev_healthy_is_the_dispatch_github_accepts_naming_the_app_image_and_revisions(argocd, config, github):
    app = application()
    admin(argocd, config, app, "template", "notify", "dev-healthy", "--recipient", "github:")

    assert github.refusals() == []
    (dispatch,) = github.dispatches()
    assert dispatch.repository == "azurelaboratory/gitops-monorepo", "the repository the Application deploys from"
    assert dispatch.event_type == "dev-healthy"
    assert dispatch.client_payload == {
        "app": "pod-details",
        "application": "pod-details-dev",
        "environment": "dev",
        "image": NEW,
        "revisions": [SHA, SHA],
    }


def test_dev_applications_subscribe_to_a_trigger_service_and_template_that_exist(tmp_path):
    n = Notifications.from_values([yaml.safe_load(p.read_text()) for p in VALUES], "http://127.0.0.1:1", "values")
    appset = yaml.safe_load(APPSET.read_text())
    subscriptions = [
        k.removeprefix("notifications.argoproj.io/subscribe.").split(".")
        for k in appset["spec"]["template"]["metadata"]["annotations"]
        if k.startswith("notifications.argoproj.io/subscribe.")
    ]
    assert subscriptions == [["on-dev-healthy", "github"]]
    (trigger,) = yaml.safe_load(n.cm["trigger.on-dev-healthy"])
    assert "service.webhook.github" in n.cm
    for template in trigger["send"]:
        assert "github" in yaml.safe_load(n.cm[f"template.{template}"])["webhook"]


def test_a_copy_of_the_trigger_without_the_image_check_would_have_fired_early(argocd, config):
    """What the first version of the trigger did with a spec ahead of its status: the e2e's finding, kept as a case
    that fails if the image check is dropped."""
    cm = yaml.safe_load((config / "cm.yaml").read_text())
    (trigger,) = yaml.safe_load(cm["data"]["trigger.on-dev-healthy"])
    trigger["when"] = trigger["when"].split(" and all(")[0]
    cm["data"]["trigger.on-dev-healthy"] = yaml.safe_dump([copy.deepcopy(trigger)])
    (config / "cm.yaml").write_text(yaml.safe_dump(cm))
    out = admin(argocd, config, application(compared=OLD, synced=OLD), "trigger", "run", "on-dev-healthy")
    assert out.strip().splitlines()[-1].split()[-1] == "true"


def test_prod_runs_no_notifications_controller_as_its_values_say():
    values = [yaml.safe_load(p.read_text()) for p in (VALUES[0], REPO / "clusters/aks-prod/argocd-values.yaml")]
    assert not Notifications.from_values(values, "http://127.0.0.1:1", "clusters/aks-prod/argocd-values.yaml").enabled


@pytest.mark.parametrize(
    ("notifiers", "message"),
    [
        ({"service.webhook.chat": "url: https://chat.example.com/hook\n"}, "is not GitHub's API"),
        ({"service.slack": "token: $slack-token\n"}, "stands in only for GitHub's API behind a webhook service"),
    ],
)
def test_a_service_the_e2e_cannot_stand_in_for_is_refused_naming_the_values_key(notifiers, message):
    from gitops_testing.e2e.notifications import NotificationsConfigError

    values = {"notifications": {"notifiers": notifiers}}
    with pytest.raises(NotificationsConfigError) as e:
        Notifications.from_values([values], "http://127.0.0.1:1", "clusters/x/argocd-values.yaml")
    key = next(iter(notifiers))
    assert str(e.value).startswith(f"clusters/x/argocd-values.yaml: notifications.notifiers.{key}: ")
    assert message in str(e.value)
