"""CLI verbs. Each module defines click commands; imports of heavy libraries stay inside the commands."""

from __future__ import annotations

import click


def register(main: click.Group) -> None:
    from gitops.commands import cluster, tools

    main.add_command(tools.tools)
    main.add_command(cluster.cluster)
    main.add_command(__import__("gitops.commands.render", fromlist=["render"]).render)
    main.add_command(__import__("gitops.commands.validate", fromlist=["validate"]).validate)
    main.add_command(__import__("gitops.commands.promote", fromlist=["promote"]).promote)
    main.add_command(__import__("gitops.commands.rollback", fromlist=["rollback"]).rollback)
    main.add_command(__import__("gitops.commands.bump", fromlist=["bump"]).bump)
    main.add_command(__import__("gitops.commands.status", fromlist=["status"]).status)
    main.add_command(__import__("gitops.commands.history", fromlist=["history"]).history)
    main.add_command(__import__("gitops.commands.diff", fromlist=["diff"]).diff)
    main.add_command(__import__("gitops.commands.changed_apps", fromlist=["changed_apps"]).changed_apps)
    main.add_command(__import__("gitops.commands.push", fromlist=["push"]).push)
    main.add_command(__import__("gitops.commands.e2e", fromlist=["e2e"]).e2e)
