"""Mounts the replication commands on the `jumin` root, in one call from jumin.cli.

- `jumin network register-key | keys | reconcile`: the national operator's commands;
  reconcile comes from jumin.reconcile, as it asks both sides.
- `jumin relay [--once]`, `jumin relay public-key`: the municipal sender.
- `jumin registry arrivals --clerk LOGIN`: expected arrivals, beside the register's other queries.
"""

from __future__ import annotations

import typer

from jumin.network.identity.cli import app as network_app
from jumin.reconcile import reconcile_command
from jumin.registry.relay_cli import arrivals_command, relay_app


def mount(app: typer.Typer, *, registry_app: typer.Typer) -> None:
    network_app.command("reconcile")(reconcile_command)
    app.add_typer(network_app, name="network")
    app.add_typer(relay_app, name="relay")
    registry_app.command("arrivals", rich_help_panel="照会")(arrivals_command)
