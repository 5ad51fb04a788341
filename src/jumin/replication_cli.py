"""Mounts the replication commands on the `jumin` root, in one call from jumin.cli.

- `jumin network register-key | keys | reconcile`: the national operator's commands;
  reconcile comes from jumin.reconcile, as it asks both sides.
- `jumin relay [--once]`, `jumin relay public-key`: the municipal sender.
- `jumin registry arrivals --clerk LOGIN`: expected arrivals, beside the register's other queries.
"""

from __future__ import annotations

import typer

from jumin.network.identity.cli import app as network_app
from jumin.network.identity.cli import network_group
from jumin.reconcile import reconcile_command
from jumin.registry.relay_cli import arrivals_command, relay_app


def _has(group: typer.Typer, name: str) -> bool:
    return any(c.name == name for c in group.registered_commands)


def mount(app: typer.Typer, *, registry_app: typer.Typer) -> None:
    """Add the commands; a second call (another root, a test) registers nothing twice."""
    if not _has(network_app, "reconcile"):
        network_app.command("reconcile")(reconcile_command)
    network_group(app).add_typer(network_app)
    app.add_typer(relay_app, name="relay")
    if not _has(registry_app, "arrivals"):
        registry_app.command("arrivals", rich_help_panel="照会")(arrivals_command)
