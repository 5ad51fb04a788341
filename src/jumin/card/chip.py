"""The card's chip as a software keystore: keys made inside, used only after the PIN.

What a real IC chip guarantees in hardware, this module keeps by construction:

- key pairs are generated inside the chip (``manufacture``, ``regenerate``); there is no
  method that returns a private key, only ``public_key`` and ``sign``;
- at rest, the private keys and the PIN verifiers are one AES-256-GCM blob (``sealed``)
  under a key derived with HKDF-SHA256 from the chip's own 256-bit secret and its card
  number. The chip secret is the stand-in for the chip's hardware-unique key: it is
  stored only wrapped by the data key ring (``jumin.keys``), whose keys live outside the
  database, so a dump of ``card_chips`` opens neither the keys nor the PIN verifiers;
- ``sign`` checks the PIN first (argon2id verifier); a wrong PIN counts down the slot's
  tries (signing 5, authentication 3) and at zero the slot locks. Only ``reset_pin``,
  a window operation done with the card present, unlocks it.

In production the chip is on the card and the national server never holds it; here the
sealed image is stored in ``card_chips`` so that the software card can be exercised
end to end (docs/card.md, "The software card").
"""

from __future__ import annotations

import json
import secrets
from base64 import b64decode, b64encode
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from jumin.card.domain import (
    AUTH_PIN_TRIES,
    SIGNING_PIN_TRIES,
    CardStateError,
    CertificateKind,
    PinLocked,
    WrongPin,
)
from jumin.keys import DataKeyRing

__all__ = ["SECRET_HASHER", "ChipImage", "SoftwareChip", "generate_key", "public_key_pem"]

MAX_TRIES = {CertificateKind.SIGNING: SIGNING_PIN_TRIES, CertificateKind.AUTH: AUTH_PIN_TRIES}
_SECRET_AAD = "card-chip-secret:"  # noqa: S105 (associated data, not a secret)
_HKDF_INFO = b"jumin-card-chip-v1:"
# A 4-digit PIN has 10^4 values: its strength is the try counter, not the hash. The
# verifier only has to be slow enough that the sealed blob, if ever opened, does not
# hand over the 6–16 character signing PIN cheaply; OWASP's argon2id minimum
# (19 MiB, 2 passes) does that at a few tens of milliseconds per check.
SECRET_HASHER = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)


def generate_key() -> ec.EllipticCurvePrivateKey:
    """ECDSA P-256 with SHA-256 (real JPKI cards use RSA-2048; see docs/card.md)."""
    return ec.generate_private_key(ec.SECP256R1())


def public_key_pem(key: ec.EllipticCurvePublicKey) -> str:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


@dataclass(frozen=True, slots=True)
class ChipImage:
    """What is stored for a chip: nothing in it opens without the key ring."""

    wrapped_secret: str
    sealed: str
    public_keys: str  # JSON: slot → PEM
    signing_tries_left: int
    auth_tries_left: int


class SoftwareChip:
    def __init__(self, card_number: str, secret: bytes, image: ChipImage) -> None:
        self._card_number = card_number
        self._secret = secret
        self._sealed = image.sealed
        self._wrapped_secret = image.wrapped_secret
        self._public = {CertificateKind(k): v for k, v in json.loads(image.public_keys).items()}
        self._tries = {
            CertificateKind.SIGNING: image.signing_tries_left,
            CertificateKind.AUTH: image.auth_tries_left,
        }

    # --- life cycle -------------------------------------------------------------------------------

    @classmethod
    def manufacture(cls, card_number: str, keyring: DataKeyRing) -> SoftwareChip:
        """A new chip with a fresh secret and both key pairs, PINs not yet set."""
        secret = secrets.token_bytes(32)
        wrapped = keyring.encrypt(b64encode(secret).decode(), _SECRET_AAD + card_number)
        empty = ChipImage(
            wrapped_secret=wrapped,
            sealed="",
            public_keys="{}",
            signing_tries_left=SIGNING_PIN_TRIES,
            auth_tries_left=AUTH_PIN_TRIES,
        )
        chip = cls(card_number, secret, empty)
        keys = {slot.value: _pkcs8(generate_key()) for slot in CertificateKind}
        chip._store({"keys": keys, "pins": {}})
        return chip

    @classmethod
    def load(cls, card_number: str, image: ChipImage, keyring: DataKeyRing) -> SoftwareChip:
        secret = b64decode(keyring.decrypt(image.wrapped_secret, _SECRET_AAD + card_number))
        return cls(card_number, secret, image)

    def image(self) -> ChipImage:
        return ChipImage(
            wrapped_secret=self._wrapped_secret,
            sealed=self._sealed,
            public_keys=json.dumps({k.value: v for k, v in self._public.items()}, sort_keys=True),
            signing_tries_left=self._tries[CertificateKind.SIGNING],
            auth_tries_left=self._tries[CertificateKind.AUTH],
        )

    # --- what anyone holding the card can read -----------------------------------------------------

    def public_key(self, slot: CertificateKind) -> ec.EllipticCurvePublicKey:
        key = serialization.load_pem_public_key(self._public[slot].encode())
        assert isinstance(key, ec.EllipticCurvePublicKey)
        return key

    def tries_left(self, slot: CertificateKind) -> int:
        return self._tries[slot]

    def pin_set(self, slot: CertificateKind) -> bool:
        return slot.value in self._open()["pins"]

    # --- PIN-guarded use ----------------------------------------------------------------------------

    def sign(self, slot: CertificateKind, pin: str, data: bytes) -> bytes:
        """ECDSA-SHA256 over ``data`` with the slot's key, once the PIN is right.

        Raises WrongPin (tries counted down, the new count to be stored by the caller) or
        PinLocked. The caller stores ``image()`` in either case.
        """
        state = self._open()
        self._check_pin(state, slot, pin)
        key = serialization.load_der_private_key(b64decode(state["keys"][slot.value]), password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return key.sign(data, ec.ECDSA(hashes.SHA256()))

    def verify_pin(self, slot: CertificateKind, pin: str) -> None:
        self._check_pin(self._open(), slot, pin)

    # --- window operations (the card is at the counter) -----------------------------------------------

    def set_initial_pin(self, slot: CertificateKind, pin: str) -> None:
        state = self._open()
        if slot.value in state["pins"]:
            raise CardStateError("暗証番号は設定済みです。変更・再設定は窓口の再設定で行います。")
        self._write_pin(state, slot, pin)

    def reset_pin(self, slot: CertificateKind, pin: str) -> None:
        """暗証番号の再設定: a new PIN and a full try counter (unlocks a locked slot)."""
        self._write_pin(self._open(), slot, pin)

    def regenerate(self, slot: CertificateKind) -> None:
        """A new key pair in the slot (a new certificate after revocation or renewal)."""
        state = self._open()
        state["keys"][slot.value] = _pkcs8(generate_key())
        self._store(state)

    # --- inside ---------------------------------------------------------------------------------------

    def _write_pin(self, state: dict[str, dict[str, str]], slot: CertificateKind, pin: str) -> None:
        state["pins"][slot.value] = SECRET_HASHER.hash(pin)
        self._tries[slot] = MAX_TRIES[slot]
        self._store(state)

    def _check_pin(self, state: dict[str, dict[str, str]], slot: CertificateKind, pin: str) -> None:
        verifier = state["pins"].get(slot.value)
        if verifier is None:
            raise CardStateError("暗証番号が設定されていません。窓口で設定してください。")
        if self._tries[slot] <= 0:
            raise PinLocked("暗証番号がロックされています。お住まいの市区町村の窓口で再設定してください。")
        try:
            SECRET_HASHER.verify(verifier, pin)
        except (VerificationError, InvalidHashError):
            self._tries[slot] -= 1
            if self._tries[slot] <= 0:
                raise PinLocked(
                    "暗証番号を続けて誤ったため、ロックされました。お住まいの市区町村の窓口で再設定してください。"
                ) from None
            raise WrongPin(f"暗証番号が違います。あと{self._tries[slot]}回誤るとロックされます。") from None
        self._tries[slot] = MAX_TRIES[slot]

    def _key(self) -> bytes:
        return HKDF(
            algorithm=hashes.SHA256(),
            length=32,
            salt=None,
            info=_HKDF_INFO + self._card_number.encode(),
        ).derive(self._secret)

    def _open(self) -> dict[str, dict[str, str]]:
        raw = b64decode(self._sealed)
        plain = AESGCM(self._key()).decrypt(raw[:12], raw[12:], self._card_number.encode())
        state: dict[str, dict[str, str]] = json.loads(plain)
        return state

    def _store(self, state: dict[str, dict[str, str]]) -> None:
        nonce = secrets.token_bytes(12)
        ct = AESGCM(self._key()).encrypt(nonce, json.dumps(state).encode(), self._card_number.encode())
        self._sealed = b64encode(nonce + ct).decode()
        for slot, der in state["keys"].items():
            private = serialization.load_der_private_key(b64decode(der), password=None)
            assert isinstance(private, ec.EllipticCurvePrivateKey)
            self._public[CertificateKind(slot)] = public_key_pem(private.public_key())


def _pkcs8(key: ec.EllipticCurvePrivateKey) -> str:
    return b64encode(
        key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    ).decode()
