"""A problem found by `gitops validate` (or met while rendering): where it is and what was expected."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Finding:
    check: str  # which check found it: yamllint, values-schema, helm-lint, render, kubeconform, repo-rules, live
    message: str  # what is wrong and what was expected
    env: str = ""
    app: str = ""
    file: str = ""  # repo-relative path of the source file, when one is to blame
    line: int | None = None
    kind: str = ""  # resource kind/name, when the problem is in a rendered object
    name: str = ""

    @property
    def where(self) -> str:
        """`dev/pod-details environments/dev/pod-details/values.yaml:12 Deployment/pod-details` (the parts known)."""
        parts = []
        if self.env or self.app:
            parts.append("/".join(p for p in (self.env, self.app) if p))
        if self.file:
            parts.append(f"{self.file}:{self.line}" if self.line else self.file)
        if self.kind or self.name:
            parts.append(f"{self.kind}/{self.name}" if self.name else self.kind)
        return " ".join(parts)

    def __str__(self) -> str:
        return f"{self.where}: {self.message}" if self.where else self.message

    def to_dict(self) -> dict:
        return asdict(self)
