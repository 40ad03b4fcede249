"""CLI verbs, one module each. Commands parse arguments and print; the logic lives in library modules, and imports
of heavy libraries (kubernetes, helm runs) stay inside the commands so `gitops --help` is instant."""

from __future__ import annotations

import click


def register(main: click.Group) -> None:
    from gitops.commands import (
        bump,
        changed_apps,
        cluster,
        diff,
        e2e,
        history,
        new_app,
        promote,
        push,
        render,
        rollback,
        status,
        tools,
        validate,
    )

    for command in (
        tools.tools,
        cluster.cluster,
        render.render,
        validate.validate,
        promote.promote,
        rollback.rollback,
        bump.bump,
        status.status,
        history.history,
        diff.diff,
        changed_apps.changed_apps,
        push.push,
        e2e.e2e,
    ):
        main.add_command(command)
    new_app.register(main)  # new-app and docs
