"""kwok's configuration: the Stages that make fake nodes Ready and their pods Running and Ready.

The kwok binary has no built-in stages (kwokctl passes its defaults; a bare ``kwok`` refuses to start with "no
stages found"), so they are read from the pinned kwok module's ``kustomize/stage/`` — the same "fast" stages
kwokctl uses: nodes become Ready at once, pods become Ready as soon as they are scheduled, deletions complete.
"""

from __future__ import annotations

from pathlib import Path

from gitops.toolchain import tools

STAGES = (
    "kustomize/stage/node/fast/node-initialize.yaml",
    "kustomize/stage/node/heartbeat/node-heartbeat.yaml",
    "kustomize/stage/pod/fast/pod-ready.yaml",
    "kustomize/stage/pod/fast/pod-complete.yaml",
    "kustomize/stage/pod/fast/pod-delete.yaml",
)


def write_config(path: Path) -> Path:
    from gitops.schemas import module_dir

    tool = tools()["kwok"]
    base = module_dir(tool.module, tool.version)
    docs = [(base / rel).read_text().strip() for rel in STAGES]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n---\n".join(docs) + "\n")
    return path
