"""`jumin network`: the replication's and the agencies' commands side by side, none hidden."""

from __future__ import annotations

import pytest
import typer
from typer.core import TyperGroup
from typer.testing import CliRunner

from jumin.cli import app
from jumin.network.agencies.cli import app as agencies_app
from jumin.network.agencies.cli import mount as mount_agencies
from jumin.network.identity.cli import app as replication_app
from jumin.replication_cli import mount as mount_replication
from jumin.widearea_cli import network_commands as wide_area_app


def _names(group: typer.Typer) -> set[str]:
    command = typer.main.get_command(group)
    assert isinstance(command, TyperGroup)
    return set(command.commands)


def _network(root: typer.Typer) -> TyperGroup:
    command = typer.main.get_command(root)
    assert isinstance(command, TyperGroup)
    network = command.commands["network"]
    assert isinstance(network, TyperGroup)
    return network


def test_both_modules_commands_are_under_jumin_network_and_none_shadows_another() -> None:
    replication, agencies = _names(replication_app), _names(agencies_app)
    assert {"register-key", "keys", "reconcile"} <= replication
    assert {"tasks", "create-client", "grant-task", "verify-batch", "run-extractions"} <= agencies
    wide_area = _names(wide_area_app)
    assert {"register-endpoint", "endpoints", "public-key"} <= wide_area
    # A name in two would leave only one of the commands reachable.
    assert replication & agencies == replication & wide_area == agencies & wide_area == set()
    network = _network(app)
    assert set(network.commands) == replication | agencies | wide_area
    # Each name runs its own module's function, not a namesake's.
    assert network.commands["reconcile"].callback is not None
    assert network.commands["reconcile"].callback.__module__ == "jumin.reconcile"
    assert network.commands["tasks"].callback is not None
    assert network.commands["tasks"].callback.__module__ == "jumin.network.agencies.cli"

    shown = CliRunner().invoke(app, ["network", "--help"], terminal_width=200)
    assert shown.exit_code == 0, shown.output
    for name in replication | agencies | wide_area:
        assert f" {name} " in shown.output, name
    top = CliRunner().invoke(app, ["--help"], terminal_width=200)
    assert top.output.count(" network ") == 1


@pytest.mark.parametrize("agencies_first", [False, True])
def test_the_mounting_order_does_not_matter(agencies_first: bool) -> None:
    root = typer.Typer()
    registry = typer.Typer()
    if agencies_first:
        mount_agencies(root)
        mount_replication(root, registry_app=registry)
    else:
        mount_replication(root, registry_app=registry)
        mount_agencies(root)
    assert [g.name for g in root.registered_groups].count("network") == 1
    assert set(_network(root).commands) == _names(replication_app) | _names(agencies_app)
    # Mounting again (another root) registers nothing twice.
    mount_replication(typer.Typer(), registry_app=registry)
    assert [c.name for c in replication_app.registered_commands].count("reconcile") == 1
    assert [c.name for c in registry.registered_commands].count("arrivals") == 1
