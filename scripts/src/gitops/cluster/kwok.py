"""kwok's configuration: the Stages that make fake nodes Ready and their pods Running and Ready.

The kwok binary has no built-in stages (kwokctl passes its defaults; a bare ``kwok`` refuses to start with "no
stages found"), so they are read from the pinned kwok module's ``kustomize/stage/`` — the same "fast" stages
kwokctl uses: nodes become Ready at once, pods become Ready as soon as they are scheduled, deletions complete.

Nothing is pulled under kwok, so every image "exists". ``unpullable`` names images the registry does not have: their
pods stay Pending and not Ready with ``ImagePullBackOff``, as a kubelet reports an image it cannot pull, and a
rollout to them never completes. That is how a release that never becomes healthy is shown.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

from gitops import yamlio
from gitops.toolchain import tools

STAGES = (
    "kustomize/stage/node/fast/node-initialize.yaml",
    "kustomize/stage/node/heartbeat/node-heartbeat.yaml",
    "kustomize/stage/pod/fast/pod-ready.yaml",
    "kustomize/stage/pod/fast/pod-complete.yaml",
    "kustomize/stage/pod/fast/pod-delete.yaml",
)
POD_READY = "kustomize/stage/pod/fast/pod-ready.yaml"
IMAGES = ".spec.containers.[].image"

# What a kubelet shows for an image the registry does not have, once it has backed off: the pod stays Pending, its
# containers waiting and not ready.
IMAGE_PULL_BACKOFF = """\
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: pod-image-pull-backoff
spec:
  resourceRef:
    apiGroup: v1
    kind: Pod
  selector:
    matchExpressions:
    - key: '.metadata.deletionTimestamp'
      operator: 'DoesNotExist'
    - key: '.status.phase'
      operator: 'In'
      values:
      - 'Pending'
    - key: '.status.containerStatuses.[].state.waiting.reason'
      operator: 'NotIn'
      values:
      - 'ImagePullBackOff'
  next:
    statusTemplate: |
      {{ $now := Now }}
      conditions:
      - lastTransitionTime: {{ $now | Quote }}
        status: "True"
        type: Initialized
      - lastTransitionTime: {{ $now | Quote }}
        status: "False"
        reason: ContainersNotReady
        type: Ready
      - lastTransitionTime: {{ $now | Quote }}
        status: "False"
        reason: ContainersNotReady
        type: ContainersReady
      containerStatuses:
      {{ range .spec.containers }}
      - image: {{ .image | Quote }}
        name: {{ .name | Quote }}
        ready: false
        started: false
        restartCount: 0
        state:
          waiting:
            reason: ImagePullBackOff
            message: {{ printf "Back-off pulling image %s: not found in the registry" .image | Quote }}
      {{ end }}
      phase: Pending
      startTime: {{ $now | Quote }}
"""


def write_config(path: Path, unpullable: Sequence[str] = ()) -> Path:
    from gitops.toolchain.schemas import module_dir

    tool = tools()["kwok"]
    base = module_dir(tool.module, tool.version)
    docs = []
    for rel in STAGES:
        text = (base / rel).read_text().strip()
        if rel == POD_READY and unpullable:
            text = _select(text, "NotIn", unpullable)
        docs.append(text)
    if unpullable:
        docs.append(_select(IMAGE_PULL_BACKOFF, "In", unpullable))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n---\n".join(docs) + "\n")
    return path


def _select(stage_text: str, operator: str, images: Sequence[str]) -> str:
    """The stage, selecting only pods that run (``In``) or do not run (``NotIn``) any of ``images``; its templates
    kept as the block text they are."""
    y = yamlio.round_trip()
    stage = y.load(stage_text)
    stage["spec"]["selector"]["matchExpressions"].append({"key": IMAGES, "operator": operator, "values": list(images)})
    out = io.StringIO()
    y.dump(stage, out)
    return out.getvalue().strip()
