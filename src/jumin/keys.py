"""Keys held outside the database.

Each key is a file under the key directory, created on first use with mode 0600. A
database dump therefore never carries what opens or forges its contents; an operator
backs up and rotates the key directory separately (docs/operations.md).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
from base64 import urlsafe_b64decode, urlsafe_b64encode
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from secrets import token_bytes, token_hex

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from jumin.config import get_settings


def _write_secret(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    # O_EXCL: two processes starting at once must not overwrite each other's fresh key.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


# Files read on every request (the current data key's id, the lookup secret) by path:
# the text and the stat it was read at. A rotation writes a new file and renames it over
# the old one (new inode), so another process's rotation is seen on the next call; the
# stat costs a tenth of opening and reading the file, which was 9% of the server's time
# recording 異動 (docs/performance.md).
_read_files: dict[Path, tuple[tuple[int, int, int], str]] = {}


def _read_text(path: Path) -> str:
    stat = path.stat()
    stamp = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
    cached = _read_files.get(path)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    text = path.read_text()
    _read_files[path] = (stamp, text)
    return text


@dataclass(frozen=True, slots=True)
class SigningKey:
    key_id: str
    private_key: Ed25519PrivateKey

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self.private_key.public_key()

    def public_pem(self) -> str:
        return self.public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode()


def load_or_create_ed25519(name: str, key_dir: Path | None = None) -> SigningKey:
    directory = key_dir or get_settings().key_dir
    path = directory / f"{name}.ed25519.pem"
    if not path.exists():
        with contextlib.suppress(FileExistsError):
            _write_secret(
                path,
                Ed25519PrivateKey.generate().private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                ),
            )
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} does not hold an Ed25519 key")
    return SigningKey(key_id=name, private_key=key)


class DataKeyRing:
    """AES-256-GCM keys for personal data at rest, with rotation.

    Ciphertexts name the key that made them (``v1.<key id>.<nonce>.<ciphertext>``), so
    after a rotation old values still open while new ones use the current key; a
    re-encryption job can then retire the old key.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._keys: dict[str, bytes] = {}
        self._load()

    def _load(self) -> None:
        if not (self.directory / "current").exists():
            self.rotate()
        for path in self.directory.glob("*.key"):
            self._keys[path.stem] = bytes.fromhex(path.read_text().strip())

    @property
    def current_id(self) -> str:
        return _read_text(self.directory / "current").strip()

    def rotate(self) -> str:
        key_id = token_hex(4)
        _write_secret(self.directory / f"{key_id}.key", token_bytes(32).hex().encode())
        tmp = self.directory / "current.tmp"
        tmp.write_text(key_id)
        tmp.replace(self.directory / "current")
        self._keys[key_id] = bytes.fromhex((self.directory / f"{key_id}.key").read_text())
        return key_id

    def _current_key(self) -> tuple[str, bytes]:
        key_id = self.current_id
        if key_id not in self._keys:  # rotated by another process since this one loaded
            self._load()
        return key_id, self._keys[key_id]

    def encrypt(self, plaintext: str, associated: str = "") -> str:
        key_id, key = self._current_key()
        nonce = token_bytes(12)
        ct = AESGCM(key).encrypt(nonce, plaintext.encode(), associated.encode())
        return ".".join(["v1", key_id, urlsafe_b64encode(nonce).decode(), urlsafe_b64encode(ct).decode()])

    def decrypt(self, token: str, associated: str = "") -> str:
        version, key_id, nonce, ct = token.split(".")
        if version != "v1":
            raise ValueError("unknown ciphertext version")
        if key_id not in self._keys:
            self._load()
        return (
            AESGCM(self._keys[key_id])
            .decrypt(urlsafe_b64decode(nonce), urlsafe_b64decode(ct), associated.encode())
            .decode()
        )

    def key_ids(self) -> list[str]:
        return sorted(self._keys)

    def encryptor(self) -> Callable[[str, str], str]:
        """``encrypt`` bound to the key current now, for bulk work (one file read, not one per value).

        The ciphertexts are the same format as ``encrypt``'s and open with ``decrypt``.
        """
        key_id, key = self._current_key()
        cipher = AESGCM(key)

        def encrypt(plaintext: str, associated: str = "") -> str:
            nonce = token_bytes(12)
            ct = cipher.encrypt(nonce, plaintext.encode(), associated.encode())
            return f"v1.{key_id}.{urlsafe_b64encode(nonce).decode()}.{urlsafe_b64encode(ct).decode()}"

        return encrypt


_keyrings: dict[Path, DataKeyRing] = {}


def data_keyring(key_dir: Path | None = None) -> DataKeyRing:
    directory = (key_dir or get_settings().key_dir) / "data"
    ring = _keyrings.get(directory)
    if ring is None:
        ring = _keyrings[directory] = DataKeyRing(directory)
    return ring


def load_or_create_secret(name: str, key_dir: Path | None = None, nbytes: int = 32) -> bytes:
    """A random symmetric secret (HMAC keys), created on first use."""
    path = (key_dir or get_settings().key_dir) / f"{name}.secret"
    try:
        return bytes.fromhex(_read_text(path).strip())
    except FileNotFoundError:
        with contextlib.suppress(FileExistsError):
            _write_secret(path, token_bytes(nbytes).hex().encode())
    return bytes.fromhex(_read_text(path).strip())


def lookup_hasher(purpose: str) -> Callable[[str], str]:
    """``lookup_hash`` for one purpose with the key read once, for bulk work."""
    key = load_or_create_secret("lookup-hmac")
    prefix = f"{purpose}\x00".encode()

    def hash_value(value: str) -> str:
        return hmac.new(key, prefix + value.encode(), hashlib.sha256).hexdigest()

    return hash_value


def lookup_hash(value: str, purpose: str) -> str:
    """A keyed hash for finding an encrypted value without decrypting every row.

    Keyed (HMAC), not a plain hash: 個人番号 has only 10^11 possible values, so an
    unkeyed hash could be reversed by trying them all.
    """
    key = load_or_create_secret("lookup-hmac")
    return hmac.new(key, f"{purpose}\x00{value}".encode(), hashlib.sha256).hexdigest()
