"""Credentials sealed at rest: round trip, binding to a row, tampering, and the key file."""

from __future__ import annotations

import stat

import pytest

from aiconnector.core.secretbox import (
    KEY_FILE_NAME,
    SecretBox,
    SecretBoxError,
    generate_key,
    load_or_create_key,
    parse_key,
)


def box() -> SecretBox:
    return SecretBox(parse_key(generate_key()))


def test_round_trip_and_the_plaintext_never_appears_in_the_sealed_bytes() -> None:
    sealer = box()
    sealed = sealer.seal("abcd EFGH ijkl MNOP qrst UVWX", context="wordpress:user:7")
    assert b"abcd" not in sealed and b"EFGH" not in sealed
    assert sealer.open(sealed, context="wordpress:user:7") == "abcd EFGH ijkl MNOP qrst UVWX"


def test_the_same_secret_sealed_twice_differs() -> None:
    sealer = box()
    assert sealer.seal("x", context="c") != sealer.seal("x", context="c")


def test_a_ciphertext_moved_to_another_row_does_not_open() -> None:
    sealer = box()
    sealed = sealer.seal("secret", context="wordpress:user:7")
    with pytest.raises(SecretBoxError):
        sealer.open(sealed, context="wordpress:user:8")


def test_tampering_and_another_key_are_detected() -> None:
    sealer = box()
    sealed = bytearray(sealer.seal("secret", context="c"))
    sealed[-1] ^= 1
    with pytest.raises(SecretBoxError):
        sealer.open(bytes(sealed), context="c")
    with pytest.raises(SecretBoxError):
        box().open(sealer.seal("secret", context="c"), context="c")
    with pytest.raises(SecretBoxError):
        sealer.open(b"\x02" + bytes(40), context="c")


def test_the_key_file_is_created_private_and_reused(tmp_path) -> None:  # noqa: ANN001
    first = load_or_create_key(None, tmp_path)
    path = tmp_path / KEY_FILE_NAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_key(None, tmp_path) == first
    configured = generate_key()
    assert load_or_create_key(configured, tmp_path) == parse_key(configured) != first


@pytest.mark.parametrize("bad", ["not base64 !!", "c2hvcnQ="])
def test_a_malformed_key_is_refused_with_a_reason(bad: str) -> None:
    with pytest.raises(ValueError, match="credentials key"):
        parse_key(bad)
