"""Secrets: generation with recognizable prefixes, fast hashes for random secrets, Argon2 for
human passwords, constant-time comparison.

Random secrets (application passwords, tokens, codes) carry 160+ bits of entropy, so a single
SHA-256 is enough to make a stolen database useless and lets us look them up by hash in one
indexed query. Human passwords are guessable, so they get Argon2id."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

APP_PASSWORD_PREFIX = "aic_ap_"
_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789"  # no 0/O/1/l/I

_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters
# A hash of a random password, verified when the user does not exist so that timing does not
# reveal which usernames exist.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


def random_secret(prefix: str, *, length: int = 32) -> str:
    """``prefix`` + ``length`` characters from a 57-symbol alphabet (32 chars ≈ 186 bits)."""
    return prefix + "".join(secrets.choice(_ALPHABET) for _ in range(length))


def sha256_hex(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def constant_time_equals(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password: str, password_hash: str | None) -> bool:
    """Argon2 verification; a missing hash still costs one verification (no timing oracle)."""
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def generate_password(length: int = 20) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def media_token() -> str:
    """The unguessable part of a public media URL (``/media/<token>/<name>``): 128 random bits,
    URL-safe. Not a credential (it is in every page that shows the file), so stored plain."""
    return secrets.token_urlsafe(16)


def new_id(prefix: str = "") -> str:
    """Opaque identifiers for connections and similar records (not secrets)."""
    return prefix + secrets.token_hex(8)
