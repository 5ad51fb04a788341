"""Files of personal data at rest (batch uploads and results, extractions), sealed.

A sealed file is a sequence of AES-256-GCM records under a key made for that file alone;
the file key itself is encrypted with the data key ring (outside the database) and bound
to the file's purpose, so a file copied under another job's name does not open. Records
are numbered and the last is marked final, so a reordered, truncated or extended file is
refused (the STREAM construction). Reading and writing are streamed: memory stays flat
whatever the size of the file.

Layout::

    b"JUMINSEALED1 " + <key ring token> + b"\\n"
    then records: 4-byte big-endian length, 1 flag byte (1 = final), ciphertext
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, cast

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from jumin.config import get_settings
from jumin.keys import data_keyring

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer, WriteableBuffer

MAGIC = b"JUMINSEALED1 "
RECORD_SIZE = 256 * 1024
_HEADER = struct.Struct(">IB")


class SealedFileError(Exception):
    """The file is not what was written: truncated, altered, or sealed for another purpose."""


def files_root() -> Path:
    """Where the national side keeps sealed files: ``var/national-files`` (mode 0700)."""
    root = get_settings().var_dir / "national-files"
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    return root


def _nonce(index: int) -> bytes:
    return b"\x00\x00\x00\x00" + index.to_bytes(8, "big")


def _aad(purpose: str, index: int, final: bool) -> bytes:
    return f"{purpose}\x00{index}\x00{int(final)}".encode()


class SealedWriter(io.RawIOBase):
    """A write-only binary stream that seals what it is given; ``close`` writes the final record.

    ``sha256`` and ``size`` describe the plaintext, so that a file's hash can be audited
    and checked by whoever receives it decrypted. ``abort`` removes a partly written file.
    """

    def __init__(self, path: Path, *, purpose: str) -> None:
        super().__init__()
        self.path = path
        self.purpose = purpose
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        self._out: BinaryIO = os.fdopen(fd, "wb")
        key = AESGCM.generate_key(bit_length=256)
        self._aead = AESGCM(key)
        self._out.write(MAGIC + data_keyring().encrypt(key.hex(), associated=purpose).encode() + b"\n")
        self._buffer = bytearray()
        self._index = 0
        self._hash = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, b: ReadableBuffer, /) -> int:
        if self.closed:
            raise ValueError("write to a closed sealed file")
        view = bytes(b)
        self._hash.update(view)
        self.size += len(view)
        self._buffer.extend(view)
        while len(self._buffer) > RECORD_SIZE:
            self._record(bytes(self._buffer[:RECORD_SIZE]), final=False)
            del self._buffer[:RECORD_SIZE]
        return len(view)

    def tell(self) -> int:
        return self.size

    def seekable(self) -> bool:
        return False

    def _record(self, chunk: bytes, *, final: bool) -> None:
        sealed = self._aead.encrypt(_nonce(self._index), chunk, _aad(self.purpose, self._index, final))
        self._out.write(_HEADER.pack(len(sealed), int(final)) + sealed)
        self._index += 1

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    def close(self) -> None:
        if self.closed:
            return
        try:
            self._record(bytes(self._buffer), final=True)
            self._buffer.clear()
            self._out.flush()
            os.fsync(self._out.fileno())
        finally:
            self._out.close()
            super().close()

    def abort(self) -> None:
        """Drop a file that must not be used (the job failed): nothing half-written remains."""
        with contextlib.suppress(OSError):
            self._out.close()
        with contextlib.suppress(ValueError):
            super().close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def _open_key(stream: BinaryIO, purpose: str) -> AESGCM:
    header = stream.readline(4096)
    if not header.startswith(MAGIC) or not header.endswith(b"\n"):
        raise SealedFileError("not a sealed file")
    try:
        key_hex = data_keyring().decrypt(header[len(MAGIC) : -1].decode(), associated=purpose)
        return AESGCM(bytes.fromhex(key_hex))
    except (InvalidTag, ValueError) as exc:
        raise SealedFileError("the file key does not open for this purpose") from exc


def read_sealed(path: Path, *, purpose: str) -> Iterator[bytes]:
    """The plaintext of a sealed file, record by record; SealedFileError if it was tampered with."""
    with path.open("rb") as stream:
        aead = _open_key(stream, purpose)
        index = 0
        while True:
            header = stream.read(_HEADER.size)
            if len(header) != _HEADER.size:
                raise SealedFileError("the file ends before its final record")
            length, final = _HEADER.unpack(header)
            sealed = stream.read(length)
            if len(sealed) != length:
                raise SealedFileError("the file ends inside a record")
            try:
                chunk = aead.decrypt(_nonce(index), sealed, _aad(purpose, index, bool(final)))
            except InvalidTag as exc:
                raise SealedFileError(f"record {index} was altered or moved") from exc
            if chunk:
                yield chunk
            index += 1
            if final:
                if stream.read(1):
                    raise SealedFileError("data follows the final record")
                return


class SealedReader(io.RawIOBase):
    """A readable binary stream over a sealed file, for csv via io.TextIOWrapper."""

    def __init__(self, path: Path, *, purpose: str) -> None:
        super().__init__()
        self._chunks = read_sealed(path, purpose=purpose)
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer, /) -> int:
        while not self._pending:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._pending = chunk
        view = memoryview(buffer).cast("B")
        n = min(len(view), len(self._pending))
        view[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n


def open_text(path: Path, *, purpose: str, encoding: str) -> io.TextIOWrapper:
    """A sealed file as text lines for ``csv.reader``; undecodable bytes become U+FFFD."""
    return io.TextIOWrapper(
        io.BufferedReader(SealedReader(path, purpose=purpose), buffer_size=RECORD_SIZE),
        encoding=encoding,
        errors="replace",
        newline="",
    )


def remove_tree(path: Path) -> None:
    if not path.exists():
        return
    for child in sorted(path.rglob("*"), reverse=True):
        if child.is_dir():
            child.rmdir()
        else:
            child.unlink()
    path.rmdir()


def text_writer(sink: SealedWriter, *, encoding: str = "utf-8") -> io.TextIOWrapper:
    """A text stream (for ``csv.writer``) into a sealed file; end it with :func:`finish_text`."""
    return io.TextIOWrapper(io.BufferedWriter(sink, buffer_size=RECORD_SIZE), encoding=encoding, newline="")


def finish_text(text: io.TextIOWrapper) -> None:
    """Flush everything down to the sealed file without closing it (the caller closes it)."""
    text.flush()
    buffered = cast(io.BufferedWriter, text.detach())
    buffered.flush()
    buffered.detach()
