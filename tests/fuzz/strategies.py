"""Hostile values, and how each reaches the wire.

Text may hold what a careful attacker tries first: NUL bytes, lone surrogates, non-Latin-1
characters, control characters, markup, 10-100 kB values. httpx cannot send a lone surrogate
in a ``str``, so every value is encoded here: surrogates as their (invalid) UTF-8 bytes,
percent-encoded in forms and query strings (``%ED%A0%80``) and as ``\\ud800`` escapes in JSON
(valid JSON text for an unpaired surrogate). Raw ``bytes`` values stand for undecodable input
(``%FF``). JSON bodies may carry "raw" pieces Python's ``json`` never writes: 1,000-deep
nesting, ``1e999``, ``NaN``, a 400-digit number (``RAW_JSON``)."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from urllib.parse import quote, quote_plus

from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy

HUGE = 100_000
# httpx refuses URLs over 64 KiB, and a character may take 12 once percent-encoded, so huge
# query values are 4,000 characters (tests ``assume`` the whole URL fits).
HUGE_IN_URL = 4_000
MAX_URL = 60_000
SURROGATES = ("\ud800", "\udfff", "\udc80")
NON_LATIN1 = ("例", "中文テキスト", "Ωμέγα", "🙂", "\u202eevil", "\ufeffbom", "\u2028", "ﬀ", "İ")
SPECIAL_TEXT: tuple[str, ...] = (
    "",
    " ",
    "\x00",
    "a\x00b",
    *SURROGATES,
    "x\udc80y",
    *NON_LATIN1,
    "\r\n",
    "\t",
    "\x7f\x1b[31m",
    "%00",
    "%ED%A0%80",
    "%",
    "../../etc/passwd",
    "<script>alert(1)</script>",
    "\"'><img src=x onerror=alert(1)>",
    "' OR '1'='1",
    "{{7*7}}",
    "${jndi:ldap://127.0.0.1:9/a}",
    "null",
    "true",
    "[]",
    "{}",
    "-1",
    "0",
    "1e999",
    "NaN",
    "9" * 400,
    "A" * 1000,
)
INJECTED = ("\x00", *SURROGATES, "例", "🙂", "\r\n", "%", "&", "=", "+", "#", "?", "/", "\\", '"', "<", ":")

# Raw JSON fragments, substituted for their marker strings by ``encode_json``.
RAW_JSON: dict[str, str] = {
    "__raw_deep_list__": "[" * 1000 + "]" * 1000,
    "__raw_deep_object__": '{"a":' * 1000 + "1" + "}" * 1000,
    "__raw_1e999__": "1e999",
    "__raw_nan__": "NaN",
    "__raw_infinity__": "-Infinity",
    "__raw_400_digits__": "1" + "0" * 400,
}
HUGE_INTS = (2**31, 2**31 - 1, -(2**31) - 1, 2**53 + 1, 2**63, -(2**63) - 1, 2**64, 10**30, 10**400)


def huge_text(size: int = HUGE) -> SearchStrategy[str]:
    """One repeated unit: generating 100 kB of random text per example would dominate the run."""
    units = st.sampled_from(["a", "例", "\x00", "%", "🙂", "ab\ud800", "<a>"])
    return st.builds(lambda unit, n: (unit * n)[:n], units, st.sampled_from([size // 100, size // 10, size]))


def hostile_text(max_size: int = 30, huge: int = HUGE) -> SearchStrategy[str]:
    """Mostly short nasty text; about one value in twenty is 1-100 kB."""
    special = st.sampled_from(SPECIAL_TEXT)
    random = st.text(max_size=max_size)
    injected = st.builds(
        lambda a, b, c: a + b + c, st.text(max_size=8), st.sampled_from(INJECTED), st.text(max_size=8)
    )
    return st.one_of(*[special, random, injected] * 6, huge_text(huge))


FieldValue = str | bytes
Pairs = Sequence[tuple[FieldValue, FieldValue]]


def field_value(max_size: int = 30, huge: int = HUGE) -> SearchStrategy[FieldValue]:
    """A form or query value: text, or bytes that are not UTF-8 at all."""
    return st.one_of(hostile_text(max_size, huge), st.binary(max_size=12))


def wire_bytes(value: FieldValue) -> bytes:
    return value if isinstance(value, bytes) else value.encode("utf-8", "surrogatepass")


def urlencode_pairs(pairs: Pairs) -> str:
    """``application/x-www-form-urlencoded`` (also a query string), byte for byte."""
    return "&".join(f"{quote_plus(wire_bytes(k))}={quote_plus(wire_bytes(v))}" for k, v in pairs)


def quote_path(segment: FieldValue) -> str:
    """One path segment, percent-encoded as UTF-8 (surrogates as their invalid bytes)."""
    return quote(wire_bytes(segment), safe="")


BOUNDARY = b"fuzz7MA4YWxkTrZu0gW"


def multipart(pairs: Pairs) -> bytes:
    parts = [
        b"--" + BOUNDARY + b'\r\nContent-Disposition: form-data; name="'
        + wire_bytes(k).replace(b'"', b"%22").replace(b"\r", b"").replace(b"\n", b"")
        + b'"\r\n\r\n' + wire_bytes(v) + b"\r\n"
        for k, v in pairs
    ]  # fmt: skip
    return b"".join(parts) + b"--" + BOUNDARY + b"--\r\n"


FORM = "application/x-www-form-urlencoded"
# How a form body is labelled when a request is messy: wrong in every way clients get it wrong.
_MESSY_FORM_KINDS = ("urlencoded", "urlencoded+charset", "multipart", "json", "text", "none", "formx")


def encode_form(fields: Pairs, kind: str = "urlencoded") -> tuple[dict[str, str], bytes]:
    """(headers, body) of a form POST labelled as ``kind``."""
    encoded = urlencode_pairs(fields).encode("ascii")
    if kind == "urlencoded":
        return {"Content-Type": FORM}, encoded
    if kind == "urlencoded+charset":
        return {"Content-Type": f"{FORM}; charset=utf-8"}, encoded
    if kind == "multipart":
        return {"Content-Type": f"multipart/form-data; boundary={BOUNDARY.decode()}"}, multipart(fields)
    if kind == "json":
        as_json = {
            wire_bytes(k).decode("utf-8", "replace"): wire_bytes(v).decode("utf-8", "replace")
            for k, v in fields
        }
        return {"Content-Type": "application/json"}, json.dumps(as_json).encode()
    if kind == "text":
        return {"Content-Type": "text/plain"}, encoded
    if kind == "formx":
        return {"Content-Type": FORM + "x"}, encoded
    return {}, encoded


@st.composite
def form_request(
    draw: st.DrawFn,
    fields: dict[str, SearchStrategy[FieldValue]],
    *,
    kinds: Sequence[str] = _MESSY_FORM_KINDS,
) -> tuple[dict[str, str], bytes]:
    """(headers, body) of a form POST of ``fields``: half the time a clean form (each field
    once, properly labelled) so the code behind the parser runs; otherwise messy: fields
    missing or repeated, unknown fields added, shuffled, labelled as anything."""
    messy = draw(st.booleans())
    counts = (1, 1, 1, 0, 2) if messy else (1, 1, 1, 1, 1, 0)
    pairs: list[tuple[FieldValue, FieldValue]] = []
    for name, values in fields.items():
        pairs += [(name, draw(values)) for _ in range(draw(st.sampled_from(counts)))]
    if not messy:
        return encode_form(pairs)
    pairs += draw(st.lists(st.tuples(field_value(12), field_value(12)), max_size=2))
    return encode_form(draw(st.permutations(pairs)), draw(st.sampled_from(kinds)))


def one_of_or_hostile(*good: FieldValue, max_size: int = 30, huge: int = HUGE) -> SearchStrategy[FieldValue]:
    """A known-good value most of the time (so deeper code runs), otherwise anything."""
    if not good:
        return field_value(max_size, huge)
    return st.one_of(st.sampled_from(good), st.sampled_from(good), field_value(max_size, huge))


# --- JSON ------------------------------------------------------------------------------------

JSON_SCALARS: SearchStrategy[object] = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from(HUGE_INTS),
    st.floats(allow_nan=False, allow_infinity=False),
    hostile_text(20),
    st.sampled_from(list(RAW_JSON)),
)


def json_values(leaves: SearchStrategy[object] = JSON_SCALARS, max_leaves: int = 8) -> SearchStrategy[object]:
    return st.recursive(
        leaves,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(hostile_text(10), inner, max_size=4),
        max_leaves=max_leaves,
    )


def encode_json(value: object) -> bytes:
    """``json.dumps`` (surrogates become ``\\udXXX`` escapes), then the raw fragments."""
    text = json.dumps(value)
    for marker, raw in RAW_JSON.items():
        text = text.replace(json.dumps(marker), raw)
    return text.encode("utf-8")


RAW_BODIES: tuple[bytes, ...] = (
    b"",
    b"{",
    b'{"a":',
    b"\xef\xbb\xbf{}",
    b'{"a":"\xff\xfe"}',
    b'{"a":"\xed\xa0\x80"}',
    b"[" * 100_000 + b"]" * 100_000,
    b"1" + b"0" * HUGE,
    b'{"a":1,"a":2}',
    b"\x00",
    b"null",
    b"[]",
    b"[{}]",
    b'"text"',
    b"1e999",
)


def json_body(documents: SearchStrategy[object]) -> SearchStrategy[bytes]:
    """A JSON body: mostly ``documents``, else any JSON value, broken JSON or random bytes."""
    return st.one_of(
        documents.map(encode_json),
        documents.map(encode_json),
        documents.map(encode_json),
        json_values().map(encode_json),
        st.sampled_from(RAW_BODIES),
        st.binary(max_size=64),
    )


# --- headers ---------------------------------------------------------------------------------

# Bytes h11 (httpx) will put in a header value: visible ASCII and obs-text, inner spaces.
_HEADER_ALPHABET = bytes([*range(0x21, 0x7F), *range(0x80, 0x100)])


def header_bytes(max_size: int = 40) -> SearchStrategy[bytes]:
    inner = st.binary(max_size=max_size).map(
        lambda b: bytes(_HEADER_ALPHABET[c % len(_HEADER_ALPHABET)] for c in b)
    )
    return st.one_of(
        inner, st.builds(lambda a, b: a + b" " + b, inner, inner).map(lambda b: b.strip() or b"x")
    )


def basic(user: FieldValue, password: FieldValue) -> bytes:
    return b"Basic " + base64.b64encode(wire_bytes(user) + b":" + wire_bytes(password))


def authorization(good: Sequence[bytes] = ()) -> SearchStrategy[bytes]:
    """An ``Authorization`` value: a working one from ``good``, or a Basic/Bearer that is not."""
    bad = st.one_of(
        st.builds(basic, field_value(20, 2_000), field_value(20, 2_000)),
        st.builds(lambda b: b"Basic " + b, header_bytes()),
        st.builds(lambda b: b"Bearer " + b, header_bytes()),
        st.builds(lambda b: b"Bearer aic_at_" + b, header_bytes()),
        st.sampled_from(
            [b"Bearer " + b"a" * 8000, b"Basic", b"Bearer", b"Negotiate abc", b"basic Og==", b"Basic ==="]
        ),
        header_bytes(),
    )
    bad = bad.map(lambda value: value.strip() or b"x")  # h11 sends no edge whitespace
    if not good:
        return bad
    return st.one_of(st.sampled_from(list(good)), st.sampled_from(list(good)), bad)
