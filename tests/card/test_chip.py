"""The software chip: keys never leave it, PINs count down and lock, the window unlocks."""

from __future__ import annotations

from base64 import b64decode

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy.orm import Session

from jumin.card import repository, service
from jumin.card.chip import SoftwareChip
from jumin.card.domain import CardStateError, CertificateKind, PinLocked, WrongPin
from jumin.card.models import CardChip
from jumin.db import finish_failed
from jumin.keys import data_keyring
from tests.card.helpers import AUTH_PIN, DOCS, SIGNING_PIN, issue_card, seed_identity


def test_keys_are_made_inside_and_only_a_signature_comes_out() -> None:
    chip = SoftwareChip.manufacture("123456789012", data_keyring())
    public = [name for name in dir(chip) if not name.startswith("_")]
    assert not [name for name in public if "export" in name or "private" in name]
    image = chip.image()
    # The sealed image is ciphertext: not even the JSON structure shows.
    assert b'"keys"' not in b64decode(image.sealed)
    chip.set_initial_pin(CertificateKind.AUTH, "4321")
    signature = chip.sign(CertificateKind.AUTH, "4321", b"challenge")
    chip.public_key(CertificateKind.AUTH).verify(signature, b"challenge", ec.ECDSA(hashes.SHA256()))
    # The stored image opens only with the key ring and the card number it was made for.
    reloaded = SoftwareChip.load("123456789012", chip.image(), data_keyring())
    assert (
        reloaded.public_key(CertificateKind.AUTH).public_numbers()
        == chip.public_key(CertificateKind.AUTH).public_numbers()
    )
    with pytest.raises(Exception):  # noqa: B017, PT011 - AES-GCM refuses another card's number
        SoftwareChip.load("123456789013", chip.image(), data_keyring()).sign(
            CertificateKind.AUTH, "4321", b"x"
        )


def test_a_pin_must_be_set_before_signing() -> None:
    chip = SoftwareChip.manufacture("123456789012", data_keyring())
    with pytest.raises(CardStateError):
        chip.sign(CertificateKind.SIGNING, "ABC123", b"x")


@pytest.mark.parametrize(
    ("kind", "right", "tries"),
    [(CertificateKind.AUTH, AUTH_PIN, 3), (CertificateKind.SIGNING, SIGNING_PIN, 5)],
)
def test_wrong_pins_count_down_lock_and_only_the_window_unlocks(
    national_db: Session, kind: CertificateKind, right: str, tries: int
) -> None:
    card_number, _ = issue_card(national_db, seed_identity(national_db))
    wrong = "0000" if kind is CertificateKind.AUTH else "WRONG9"
    for left in range(tries - 1, 0, -1):
        with pytest.raises(WrongPin) as failed:
            service.sign_with_card(national_db, card_number=card_number, kind=kind, pin=wrong, data=b"x")
        assert f"あと{left}回" in failed.value.detail
    with pytest.raises(PinLocked):
        service.sign_with_card(national_db, card_number=card_number, kind=kind, pin=wrong, data=b"x")
    # Locked: even the right PIN is refused now.
    with pytest.raises(PinLocked):
        service.sign_with_card(national_db, card_number=card_number, kind=kind, pin=right, data=b"x")
    card = repository.card_by_number(national_db, card_number)
    assert card is not None
    chip = national_db.get_one(CardChip, card.id)
    assert (chip.auth_tries_left if kind is CertificateKind.AUTH else chip.signing_tries_left) == 0
    new_pin = "5678" if kind is CertificateKind.AUTH else "NEW12345"
    view = service.reset_pin(
        national_db,
        actor=service.national_actor(),
        lg_code="131016",
        card_number=card_number,
        kind=kind,
        new_pin=new_pin,
        identity_documents=DOCS,
    )
    assert (view.auth_tries_left if kind is CertificateKind.AUTH else view.signing_tries_left) == tries
    assert service.sign_with_card(national_db, card_number=card_number, kind=kind, pin=new_pin, data=b"x")


def test_a_wrong_pin_survives_the_failed_request(national_db: Session) -> None:
    """The entry point rolls back on errors, except for refusals that must leave their trace."""
    card_number, _ = issue_card(national_db, seed_identity(national_db))
    try:
        service.sign_with_card(
            national_db, card_number=card_number, kind=CertificateKind.AUTH, pin="9999", data=b"x"
        )
    except WrongPin as exc:
        finish_failed(national_db, exc)
    national_db.expire_all()
    card = repository.card_by_number(national_db, card_number)
    assert card is not None
    assert national_db.get_one(CardChip, card.id).auth_tries_left == 2
