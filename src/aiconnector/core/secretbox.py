"""Encryption at rest for secrets the server must be able to read back.

Almost every secret here is stored as a hash. The exception is a credential we must *present*
to another system, such as each person's WordPress Application Password: it has to be
decrypted to be used. Those are sealed with AES-256-GCM under a key that is deliberately kept
out of the database: a stolen database dump alone yields nothing usable.

The key comes from ``AICONNECTOR_CREDENTIALS_KEY`` (urlsafe base64 of 32 bytes; every
instance behind a load balancer needs the same value), or else from ``credentials.key`` in
the data directory, created with mode 0600 on first use (fine for one machine).

Every ciphertext is bound to a context string (for example ``wordpress:user:7``) through
GCM's associated data, so a ciphertext copied onto another row does not decrypt."""

from __future__ import annotations

import base64
import binascii
import os
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_FILE_NAME = "credentials.key"
_NONCE_BYTES = 12
_VERSION = b"\x01"


class SecretBoxError(Exception):
    """A ciphertext could not be opened: wrong key, wrong context or tampered data."""


def parse_key(encoded: str) -> bytes:
    try:
        key = base64.urlsafe_b64decode(encoded.strip().encode("ascii"))
    except (ValueError, binascii.Error):
        raise ValueError("the credentials key must be urlsafe base64") from None
    if len(key) != 32:
        raise ValueError(f"the credentials key must be 32 bytes, got {len(key)}")
    return key


def generate_key() -> str:
    """A new key, encoded as the setting expects (``aiconnector`` prints one on request)."""
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode("ascii")


def load_or_create_key(configured: str | None, data_dir: Path) -> bytes:
    """The configured key, or the data directory's key file (created 0600 if missing)."""
    if configured:
        return parse_key(configured)
    path = data_dir / KEY_FILE_NAME
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process created it first: read theirs
        else:
            with os.fdopen(fd, "w") as handle:
                handle.write(generate_key() + "\n")
    return parse_key(path.read_text())


class SecretBox:
    """Seals and opens small secrets under one key; the format carries a version byte so the
    scheme can change without guessing what old rows hold."""

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    def seal(self, plaintext: str, *, context: str) -> bytes:
        nonce = secrets.token_bytes(_NONCE_BYTES)
        return _VERSION + nonce + self._aead.encrypt(nonce, plaintext.encode(), context.encode())

    def open(self, sealed: bytes, *, context: str) -> str:
        if len(sealed) < 1 + _NONCE_BYTES + 16 or sealed[:1] != _VERSION:
            raise SecretBoxError("unknown ciphertext format")
        nonce, body = sealed[1 : 1 + _NONCE_BYTES], sealed[1 + _NONCE_BYTES :]
        try:
            return self._aead.decrypt(nonce, body, context.encode()).decode()
        except InvalidTag:
            raise SecretBoxError("wrong key, wrong context or tampered data") from None
