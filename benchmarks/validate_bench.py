#!/usr/bin/env python3
"""Benchmark `gitops validate` (static) against a naive `helm template | kubeconform` loop, in the same run.

For N = 1, 10, 50, 500 apps in two environments (dev and prod), a temporary copy of this repository gets N apps:
pod-details plus N-1 copies of its chart and environment files under new names (prod given copies of their charts, as
a promotion would). Then, on the same tree:

- `gitops validate`, cold (an empty result cache, `gitops.checks.cache`): yamllint, values schema + `helm lint
  --strict` and a render per app and environment (in parallel), one kubeconform run over everything (ApplicationSets,
  generated Applications, platform, clusters), and the repository rules;
- `gitops validate`, warm: the same cache, after a change to one app's dev overlay (the inner loop of a developer);
  it must render and check that app again, and only that one (the run fails if not);
- the baseline: for each app and environment, one after the other, `helm template` piped into
  `kubeconform -strict` with the same schemas — less checking than validate does, the way a shell loop would do it.
  At 500 apps the baseline is not run (it takes minutes); the 500-app figures are validate's cold run and its cost
  per app, to be read against the 50-app one (a constant cost per app: validate scales linearly).

Prints one JSON object per line: seconds of each, their ratios (the figures that count: machine speed cancels out),
the cost per app, the CPU seconds of each (every process they ran: unlike wall time, not bent by whatever else the
machine runs) and the load average, which says how far to trust the wall figures. Targets: 50 apps x 2 envs cold
<= 0.5x the naive loop, warm after a one-app change <= 0.1x; 500 apps x 2 envs cold under 90 s.

Usage: .venv/bin/python benchmarks/validate_bench.py [--check] [--apps 1,10,50,500]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
APP = "pod-details"
ENVS = ("dev", "prod")

TARGETS = {
    "validate_seconds_50": ("<", 60.0),
    "ratio_50": ("<=", 0.5),
    "warm_ratio_50": ("<=", 0.1),
    "validate_seconds_500": ("<", 90.0),
}
NAIVE_UP_TO = 50  # apps: beyond, the baseline would take minutes and say nothing new


def emit(figure: str, value: float, unit: str, **extra: object) -> bool:
    line: dict[str, object] = {"benchmark": "validate", "figure": figure, "value": round(value, 3), "unit": unit}
    met = True
    if figure in TARGETS:
        op, bound = TARGETS[figure]
        met = {"<": value < bound, "<=": value <= bound}[op]
        line["target"] = f"{op} {bound:g}"
        line["met"] = met
    line.update(extra)
    print(json.dumps(line), flush=True)
    return met


def make_repo(dest: Path, apps: int) -> Path:
    """A copy of this repo with ``apps`` apps in every environment, prod running copies of their charts."""
    from gitops_testing import sandbox

    repo = sandbox.snapshot_repo(REPO, dest)
    chart = repo / "apps" / APP / "chart"
    for i in range(1, apps):
        name = f"bench-{i:03d}"
        target = repo / "apps" / name / "chart"
        shutil.copytree(chart, target)
        meta = target / "Chart.yaml"
        meta.write_text(meta.read_text().replace(f"name: {APP}\n", f"name: {name}\n", 1))
        for env in ENVS:
            src, dst = repo / "environments" / env / APP, repo / "environments" / env / name
            shutil.copytree(src, dst)
            values = dst / "values.yaml"
            values.write_text(values.read_text().replace(f"{APP}-{env}.", f"{name}-{env}."))
    head = sandbox.commit(repo, f"bench: {apps} apps")
    sandbox.copy_charts(repo, "prod", head)
    sandbox.commit(repo, "bench: promote the charts to prod")
    return repo


def app_names(repo: Path) -> list[str]:
    return sorted(p.parent.parent.name for p in (repo / "apps").glob("*/chart/Chart.yaml"))


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def time_validate(repo: Path, cache: Path) -> tuple[float, float, dict]:
    """Wall and CPU seconds (every process it ran) of `gitops validate` with the result cache at ``cache``, and its
    statistics (how many renders and checks it took from the cache)."""
    started, cpu = time.monotonic(), children_cpu()
    proc = subprocess.run(
        [sys.executable, "-m", "gitops", "validate", "--format", "json"],
        cwd=repo,
        capture_output=True,
        text=True,
        env={**os.environ, "GITOPS_VALIDATE_CACHE": str(cache)},
    )
    elapsed = time.monotonic() - started
    if proc.returncode != 0:
        sys.exit(f"validate_bench: `gitops validate` failed on the generated repo:\n{proc.stdout}\n{proc.stderr}")
    return elapsed, children_cpu() - cpu, json.loads(proc.stdout)["stats"]


def change_one_app(repo: Path) -> None:
    """What a developer does between two runs: one app's dev overlay changes (a value, not a comment)."""
    values = repo / "environments" / ENVS[0] / APP / "values.yaml"
    values.write_text(values.read_text().replace("progressDeadlineSeconds: 60", "progressDeadlineSeconds: 90", 1))


def time_naive(repo: Path) -> tuple[float, float]:
    """`helm template | kubeconform` per app and environment, sequentially (the loop validate replaces)."""
    import yaml

    from gitops.toolchain import schemas, tool_path

    helm, kubeconform = str(tool_path("helm")), str(tool_path("kubeconform"))
    locations = schemas.schema_locations()
    started, cpu = time.monotonic(), children_cpu()
    for env in ENVS:
        namespace = yaml.safe_load((repo / "environments" / env / "env.yaml").read_text())["namespace"]
        for app in app_names(repo):
            folder = repo / "environments" / env / app
            image = yaml.safe_load((folder / "release.yaml").read_text())["image"]
            render = subprocess.run(
                [helm, "template", app, str(repo / "apps" / app / "chart"), "--namespace", namespace,
                 "--values", str(folder / "values.yaml"), "--set-string", f"image.tag={image['tag']}"],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            check = subprocess.run(
                [kubeconform, "-strict", "-summary", *locations, "-"],
                input=render.stdout,
                capture_output=True,
                text=True,
            )
            if check.returncode != 0:
                sys.exit(f"validate_bench: baseline kubeconform failed for {env}/{app}:\n{check.stdout}{check.stderr}")
    return time.monotonic() - started, children_cpu() - cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--apps", default="1,10,50,500", help="comma-separated app counts (default: 1,10,50,500)")
    args = parser.parse_args()
    counts = [int(n) for n in args.apps.split(",")]
    ok = True
    with tempfile.TemporaryDirectory(prefix="validate-bench-") as tmp:
        warm = make_repo(Path(tmp) / "warm", 1)
        time_validate(warm, Path(tmp) / "cache-warm-up")  # schema caches, page cache: measured runs start equal
        time_naive(warm)
        for n in counts:
            repo = make_repo(Path(tmp) / f"apps-{n}", n)
            cache = Path(tmp) / f"cache-{n}"
            pairs = n * len(ENVS)
            ours, ours_cpu, _ = time_validate(repo, cache)
            ok &= emit(f"validate_seconds_{n}", ours, "s", apps=n, envs=len(ENVS), cache="cold")
            emit(f"validate_per_app_{n}", ours / pairs, "s per app x env", apps=n)
            emit(f"validate_cpu_seconds_{n}", ours_cpu, "cpu s", apps=n)
            change_one_app(repo)
            again, again_cpu, stats = time_validate(repo, cache)
            if stats.get("render_computed") != 1:
                sys.exit(f"validate_bench: after a one-app change the warm run rendered {stats}, not one app")
            emit(f"warm_seconds_{n}", again, "s", apps=n, cache="warm, one app changed", stats=stats)
            emit(f"warm_cpu_seconds_{n}", again_cpu, "cpu s", apps=n)
            if n <= NAIVE_UP_TO:
                naive, naive_cpu = time_naive(repo)
                emit(f"naive_seconds_{n}", naive, "s", apps=n, envs=len(ENVS))
                ok &= emit(f"ratio_{n}", ours / naive, "validate cold/naive", apps=n)
                ok &= emit(f"warm_ratio_{n}", again / naive, "validate warm/naive", apps=n)
                emit(f"naive_per_app_{n}", naive / pairs, "s per app x env", apps=n)
                # CPU seconds do not depend on what else the machine runs: the check on the wall-clock figures.
                emit(f"naive_cpu_seconds_{n}", naive_cpu, "cpu s", apps=n)
            emit(f"load_average_{n}", os.getloadavg()[0], "runnable", cores=os.cpu_count())
            shutil.rmtree(repo, ignore_errors=True)
            shutil.rmtree(cache, ignore_errors=True)
    return 1 if args.check and not ok else 0


if __name__ == "__main__":
    sys.exit(main())
