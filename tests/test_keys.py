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


def test_a_rotation_by_another_process_is_used_by_the_next_value_sealed_here(tmp_path: Path) -> None:
    server = DataKeyRing(tmp_path)
    first = server.encrypt("123456789018", "individual_number")
    # `jumin keys rotate` runs in its own process: its own ring on the same directory.
    rotated_to = DataKeyRing(tmp_path).rotate()
    second = server.encrypt("123456789018", "individual_number")
    assert server.current_id == rotated_to
    assert second.split(".")[1] == rotated_to != first.split(".")[1]
    assert server.encryptor()("x", "individual_number").split(".")[1] == rotated_to
    assert server.decrypt(first, "individual_number") == server.decrypt(second, "individual_number")


def test_the_lookup_secret_is_created_once_and_a_replaced_one_is_read_again(tmp_path: Path) -> None:
    from jumin.keys import load_or_create_secret

    created = load_or_create_secret("lookup-test", tmp_path)
    assert load_or_create_secret("lookup-test", tmp_path) == created
    assert (tmp_path / "lookup-test.secret").read_text() == created.hex()
    # Restored from a backup by an operator: a new file renamed over the old one.
    replacement = tmp_path / "lookup-test.secret.new"
    replacement.write_text("ab" * 32)
    replacement.replace(tmp_path / "lookup-test.secret")
    assert load_or_create_secret("lookup-test", tmp_path) == bytes.fromhex("ab" * 32)
