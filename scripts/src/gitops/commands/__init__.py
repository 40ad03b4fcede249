"""CLI verbs. Each module defines click commands; imports of heavy libraries stay inside the commands."""

from __future__ import annotations

import click


def register(main: click.Group) -> None:
    from gitops.commands import cluster, tools

    main.add_command(tools.tools)
    main.add_command(cluster.cluster)
