"""What the cluster should run, from `gitops render` — the repo's own answer to "what would Argo CD apply?".

The e2e never restates the config: after every commit it renders the environment at that commit with the same CLI a
developer uses, and compares the live cluster with the result. So the e2e checks the renderer as much as the config.
"""

from __future__ import annotations

import difflib
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from gitops.errors import GitopsError
from gitops.yamlio import load_fast
from gitops_testing.e2e.substitutions import URL_RE

DOC_SPLIT = re.compile(r"^---[ \t]*$", re.M)
NEVER_APPLIED = "# never applied by Argo CD"


class RenderFailed(GitopsError):
    pass


@dataclass
class Rendered:
    env: str
    ref: str
    appset: str  # metadata.name of environments/<env>/applicationset.yaml
    applications: dict[str, dict]  # by name
    manifests: dict[str, list[dict]] = field(default_factory=dict)  # by Application name: what Argo CD applies

    def objects(self, app: str, kind: str) -> list[dict]:
        return [d for d in self.manifests.get(app, []) if d.get("kind") == kind]


def render(repo: Path, env: str, ref: str, out: Path, local_url: str) -> Rendered:
    """`gitops render --env ENV --ref REF --out OUT` in ``repo``, read back with the repo URL as Argo CD sees it
    here."""
    out.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "gitops", "--repo", str(repo), "render", "--env", env, "--ref", ref, "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=repo)
    if proc.returncode != 0:
        raise RenderFailed(f"`gitops render --env {env} --ref {ref[:12]}` failed:\n{proc.stderr.strip()}")
    apps_file = out / "applications.yaml"
    apps = _docs(URL_RE.sub(local_url, apps_file.read_text())) if apps_file.exists() else []
    appset_file = subprocess.run(
        ["git", "show", f"{ref}:environments/{env}/applicationset.yaml"], capture_output=True, text=True, cwd=repo
    ).stdout
    appset = next((d["metadata"]["name"] for d in yaml.safe_load_all(appset_file) if d), env)
    result = Rendered(env, ref, appset, {a["metadata"]["name"]: a for a in apps})
    for name in result.applications:
        path = out / f"{name}.yaml"
        result.manifests[name] = _docs(path.read_text()) if path.exists() else []
    return result


def _docs(text: str) -> list[dict]:
    out = []
    for chunk in DOC_SPLIT.split(text):
        if NEVER_APPLIED in chunk:
            continue
        doc = load_fast(chunk)
        if isinstance(doc, dict) and doc.get("kind"):
            out.append(doc)
    return out


# -- comparing -------------------------------------------------------------------------------------------------------


def _prune(x):
    """Drop empty values: the API server omits them, the renderer may spell them out."""
    if isinstance(x, dict):
        pruned = {k: _prune(v) for k, v in x.items()}
        return {k: v for k, v in pruned.items() if v not in (None, "", [], {})}
    if isinstance(x, list):
        return [_prune(v) for v in x]
    return x


def subset_mismatches(want, have, path: str = "") -> list[str]:
    """Where ``have`` (live) lacks or differs from what ``want`` (rendered) sets; live may add defaults."""
    want, have = _prune(want), _prune(have)
    if isinstance(want, dict):
        if not isinstance(have, dict):
            return [f"{path or '/'}: expected an object, found {have!r}"]
        out = []
        for k, v in want.items():
            if k not in have:
                out.append(f"{path}/{k}: missing (expected {_short(v)})")
            else:
                out += subset_mismatches(v, have[k], f"{path}/{k}")
        return out
    if isinstance(want, list):
        if not isinstance(have, list) or len(have) != len(want):
            return [f"{path}: expected {_short(want)}, found {_short(have)}"]
        return [
            m for i, (w, h) in enumerate(zip(want, have, strict=True)) for m in subset_mismatches(w, h, f"{path}/{i}")
        ]
    if _scalar(want) != _scalar(have):
        return [f"{path}: expected {want!r}, found {have!r}"]
    return []


def _scalar(v):
    return str(v) if isinstance(v, int | float) and not isinstance(v, bool) else v


def _short(v, limit: int = 120) -> str:
    s = repr(v)
    return s if len(s) <= limit else s[: limit - 3] + "..."


def diff(want: dict, have: dict, label: str) -> str:
    a = yaml.safe_dump(_prune(want), sort_keys=True).splitlines()
    b = yaml.safe_dump(_prune(have), sort_keys=True).splitlines()
    return "\n".join(difflib.unified_diff(a, b, f"rendered {label}", f"live {label}", lineterm="", n=2))
