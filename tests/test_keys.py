"""Rotating the data key: new values use the new key, old values still open."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from jumin.keys import DataKeyRing
from jumin.keys_cli import app


def test_values_sealed_before_a_rotation_still_open_after_it(tmp_path: Path) -> None:
    ring = DataKeyRing(tmp_path)
    before = ring.encrypt("123456789018", "individual_number")
    old_id = ring.current_id
    new_id = ring.rotate()
    after = ring.encrypt("123456789018", "individual_number")
    assert new_id != old_id
    assert before.split(".")[1] == old_id
    assert after.split(".")[1] == new_id
    reopened = DataKeyRing(tmp_path)
    assert reopened.decrypt(before, "individual_number") == reopened.decrypt(after, "individual_number")
    assert reopened.current_id == new_id


def test_a_value_sealed_for_one_purpose_does_not_open_for_another(tmp_path: Path) -> None:
    import pytest
    from cryptography.exceptions import InvalidTag

    ring = DataKeyRing(tmp_path)
    sealed = ring.encrypt("123456789018", "individual_number")
    with pytest.raises(InvalidTag):
        ring.decrypt(sealed, "staff-totp")


def test_the_rotate_command(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import jumin.keys_cli as cli

    ring = DataKeyRing(tmp_path)
    monkeypatch.setattr(cli, "data_keyring", lambda: ring)
    first = ring.current_id
    result = CliRunner().invoke(app, ["rotate"])
    assert result.exit_code == 0, result.output
    assert ring.current_id != first
    listed = CliRunner().invoke(app, ["list"]).output.splitlines()
    assert sorted(line.split()[0] for line in listed) == sorted([first, ring.current_id])
    assert f"{ring.current_id} (現用)" in listed
