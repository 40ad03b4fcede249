"""helm-batch answers exactly what the pinned helm binary answers: stdout, stderr and exit status, byte for byte,
for every command line `gitops validate` gives it and for failures, in one process one after the other (so that
nothing one command line sets, a flag, a namespace, leaks into the next)."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from gitops.render import capabilities
from gitops.render.helm import SHORT_LIVED_GO
from gitops.render.helmbatch import HelmBatch
from gitops.toolchain import ToolMissing, chart_sources, tool_path


def pinned(name: str) -> Path:
    try:
        return tool_path(name)
    except ToolMissing as e:
        pytest.fail(str(e))


@pytest.fixture
def command_lines(repo, tmp_path, upstream_chart_cache) -> list[tuple[Path, list[str]]]:
    chart = repo.path / "apps/pod-details/chart"
    dev = str(repo.path / "environments/dev/pod-details/values.yaml")
    bad = tmp_path / "bad-values.yaml"
    bad.write_text("replicaCont: 2\n")
    broken = tmp_path / "broken/chart"
    shutil.copytree(chart, broken)
    (broken / "templates/extra.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: Not_A_Name\n")
    kube = ["--kube-version", capabilities.kube_version()]
    apis = [a for v in capabilities.api_versions()[:5] for a in ("--api-versions", v)]
    upstream = [s.chart_dir for s in chart_sources().values() if not s.unavailable]
    assert upstream, "no upstream chart is fetched: run `make tools`"
    return [
        (chart, ["template", ".", "--name-template", "pod-details", "--namespace", "apps-dev", *kube, "--values", dev,
                 *apis, "--include-crds"]),
        (chart, ["template", ".", "--values", dev, "--set", "image.tag=1.2.3", "--set-string", "replicaCount=3"]),
        (chart, ["template", ".", "--values", dev]),  # no --namespace, no --set: none of the previous line's
        (chart, ["template", ".", "--values", dev, "--values", str(bad)]),  # values.schema.json rejects it
        (chart, ["template", "."]),  # a template fails: no hostnames
        (chart, ["template", ".", "--values", dev, "--no-such-flag"]),
        (chart, ["template", ".", "--values", dev, "--skip-schema-validation", "--values", str(bad)]),
        (chart, ["lint", ".", "--strict", "--values", dev, *kube]),
        (tmp_path, ["lint", "--strict", "--values", dev, str(chart), str(broken)]),
        (tmp_path, ["template", str(tmp_path / "no-such-chart")]),
        *[(c, ["template", ".", "--name-template", c.name, "--namespace", "platform", *kube]) for c in upstream],
        (chart, ["version", "--short"]),
    ]  # fmt: skip


def test_helm_batch_answers_byte_for_byte_what_helm_answers(command_lines, tmp_path):
    helm, batch = pinned("helm"), pinned("helm-batch")
    home = tmp_path / "helm-home"
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
        **SHORT_LIVED_GO,
    }
    requests = "".join(json.dumps({"dir": str(cwd), "args": args}) + "\n" for cwd, args in command_lines)
    proc = subprocess.run([str(batch)], input=requests.encode(), capture_output=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr.decode()
    replies = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(replies) == len(command_lines), proc.stderr.decode()
    failures = 0
    for (cwd, args), reply in zip(command_lines, replies, strict=True):
        want = subprocess.run([str(helm), *args], cwd=cwd, capture_output=True, env=env, timeout=600)
        assert not reply.get("crashed"), reply["crashed"]
        got = (reply["exit"], base64.b64decode(reply["stdout"]), base64.b64decode(reply["stderr"]))
        assert got == (want.returncode, want.stdout, want.stderr), f"helm {' '.join(args)}"
        failures += want.returncode != 0
    assert failures >= 4, "the failures (schema, template, flag, lint) must be among the command lines compared"


def test_the_renderers_client_gives_what_subprocess_gives(command_lines, tmp_path):
    helm = pinned("helm")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), **SHORT_LIVED_GO}
    client = HelmBatch(pinned("helm-batch"), helm, env)
    try:
        for cwd, args in command_lines:
            want = subprocess.run([str(helm), *args], cwd=cwd, capture_output=True, text=True, env=env)
            got = client.run(args, cwd)
            assert (got.returncode, got.stdout, got.stderr) == (want.returncode, want.stdout, want.stderr), args
        procs = list(client._all)
        assert len(procs) == 1, "one thread asking: one process for every command line"
    finally:
        client.close()
    assert procs[0].returncode == 0, "closed: the process ends at the end of its input"
