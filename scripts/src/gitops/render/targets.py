"""What there is to render, by name: an environment (its ApplicationSet's Applications, each rendered as Argo CD's
repo-server would), or a folder of plain manifests (``platform/``, ``clusters/<name>/``) with what each of its
Applications of an upstream chart applies."""

from __future__ import annotations

from pathlib import Path

from gitops.errors import GitopsError
from gitops.model import Repo
from gitops.render import platform
from gitops.render.documents import EnvRender, Rendered
from gitops.render.helm import Renderer
from gitops.render.plain import render_plain


def environment(model: Repo, name: str, work: Path, only_app: str | None = None) -> EnvRender:
    env = model.environments.get(name)
    if env is None:
        known = ", ".join(model.environments) or "none"
        raise GitopsError(f"no environment {name!r} (environments/{name}/); known: {known}")
    (result,) = Renderer(model, work).render_envs([env], only_app=only_app)
    if only_app and not result.applications:
        raise GitopsError(f"{env.appset_file} generates no Application for app {only_app!r} in {name}")
    return result


def folder(model: Repo, path: str, work: Path) -> list[Rendered]:
    """The folder's own manifests first, then one Rendered per Application of an upstream chart in it."""
    if not model.snapshot.is_dir(path):
        raise GitopsError(f"{path}/ does not exist ({model.snapshot.label})")
    plain = render_plain(model, path)
    return [plain, *platform.render_platform(Renderer(model, work), [plain])]
