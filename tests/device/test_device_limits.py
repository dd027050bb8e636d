"""Guessing limits and expiry, each on a server of its own: wrong user codes are limited per
signed-in person and per address, and a pending code is locked once 5 wrong codes have been
entered anywhere since it was created (the bound that keeps a guess below 2⁻³²); codes expire
after their lifetime, and each lockout and expiry is audited."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from aiconnector.core.device import WRONG_CODE_BUDGET, normalize_user_code
from tests.conftest import LiveServer
from tests.device.conftest import (
    approve,
    audit_events,
    decide_on,
    device_row,
    device_server,
    enter_code,
    error_of,
    forget_wrong_codes,
    new_device,
    signed_in,
)
from tests.support import DatabaseUnderTest
from tests.web.conftest import CSRF_FIELD, field

WRONG = ("BBBB-BBBB", "CCCC-CCCC", "DDDD-DDDD", "FFFF-FFFF", "GGGG-GGGG", "HHHH-HHHH")


@pytest.fixture(scope="module")
def limited(database: DatabaseUnderTest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with device_server(
        database,
        tmp_path_factory.mktemp("limits"),
        device_wrong_codes_per_user=3,
        device_wrong_codes_per_address=5,
    ) as server:
        yield server


@pytest.fixture(scope="module")
def short_lived(
    database: DatabaseUnderTest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    with device_server(database, tmp_path_factory.mktemp("expiry"), device_code_ttl_seconds=2) as server:
        yield server


def wrong_codes(server: LiveServer, username: str, count: int) -> None:
    with signed_in(server, username) as client:
        for entry in WRONG[:count]:
            response = enter_code(client, entry)
            assert response.status_code == 400 and "not valid" in response.text


def test_lockout_per_signed_in_user(limited: LiveServer) -> None:
    forget_wrong_codes(limited)
    device = new_device(limited)
    body = device.begin()
    wrong_codes(limited, "guesser1", 3)
    with signed_in(limited, "guesser1") as client:
        locked = enter_code(client, body["user_code"])  # even the right code: no lookup at all
        assert locked.status_code == 429 and int(locked.headers["retry-after"]) > 0
        assert "Too many wrong codes" in locked.text
    events = audit_events(limited, "device.lockout")
    assert events[0].detail["limit"] == "user" and events[0].outcome == "failure"
    with signed_in(limited, "guesser2") as client:
        assert "wants to connect" in enter_code(client, body["user_code"]).text  # others unaffected


def test_lockout_per_address(limited: LiveServer) -> None:
    forget_wrong_codes(limited)
    wrong_codes(limited, "guesser1", 3)
    wrong_codes(limited, "guesser2", 2)  # five from 127.0.0.1
    with signed_in(limited, "guesser3") as client:
        locked = enter_code(client, "JJJJ-JJJJ")
        assert locked.status_code == 429
    assert audit_events(limited, "device.lockout")[0].detail["limit"] == "address"


def test_pending_code_is_locked_after_the_wrong_code_budget(limited: LiveServer) -> None:
    forget_wrong_codes(limited)
    device = new_device(limited)
    target = device.begin()
    wrong_codes(limited, "guesser1", 3)
    assert device_row(limited, target["device_code"]).status == "pending"  # 3 < 5
    wrong_codes(limited, "guesser2", WRONG_CODE_BUDGET - 3)
    assert device_row(limited, target["device_code"]).status == "locked"
    expired = device.poll(target["device_code"])
    assert expired.status_code == 400 and error_of(expired) == "expired_token"
    assert "too many wrong codes" in expired.json()["error_description"]
    locked_events = audit_events(
        limited, "device.locked", lambda e: e.detail.get("client_id") == device.client_id
    )
    assert len(locked_events) == 1
    forget_wrong_codes(limited)  # the people may enter codes again; the locked code stays locked
    with signed_in(limited, "guesser3") as client:
        assert enter_code(client, target["user_code"]).status_code == 400
        fresh = device.begin()  # a code created after those guesses has its whole budget
        assert "wants to connect" in enter_code(client, fresh["user_code"]).text


def test_wrong_codes_before_a_code_existed_do_not_count_against_it(limited: LiveServer) -> None:
    forget_wrong_codes(limited)
    wrong_codes(limited, "guesser1", 3)
    device = new_device(limited)
    body = device.begin()
    wrong_codes(limited, "guesser2", 2)  # 5 in all, only 2 since this code was created
    assert device_row(limited, body["device_code"]).status == "pending"


def test_concurrent_wrong_codes_are_counted_exactly(limited: LiveServer) -> None:
    """Lookups are serialized, so a burst of parallel guesses cannot slip past the limit."""
    forget_wrong_codes(limited)
    with signed_in(limited, "guesser4") as client:
        csrf = field(CSRF_FIELD, client.get("/device").text)
        with ThreadPoolExecutor(max_workers=8) as pool:
            statuses = list(
                pool.map(
                    lambda code: client.post("/device", data={"csrf": csrf, "user_code": code}).status_code,
                    [f"{c * 4}-{c * 4}" for c in "BCDFGHJK"],
                )
            )
    assert sorted(statuses) == [400] * 3 + [429] * 5
    assert len(audit_events(limited, "device.code_rejected", wait=False)) == 3


def test_guessing_bound_is_below_2_to_the_minus_32() -> None:
    space = 20**8
    assert WRONG_CODE_BUDGET / space < 2**-32
    assert (WRONG_CODE_BUDGET + 1) / space > 2**-32  # the budget is as large as the bound allows
    assert normalize_user_code("bcdf ghjk") == normalize_user_code("BCDF-GHJK") == "BCDFGHJK"


def test_expired_code_gives_expired_token_and_is_audited_once(short_lived: LiveServer) -> None:
    device = new_device(short_lived)
    body = device.begin()
    assert body["expires_in"] == 2
    time.sleep(2.3)
    for _ in range(2):
        expired = device.poll(body["device_code"])
        assert expired.status_code == 400 and error_of(expired) == "expired_token"
    assert device_row(short_lived, body["device_code"]).status == "expired"
    time.sleep(0.5)  # let the batched audit writer catch up before counting
    events = audit_events(
        short_lived, "device.expired", lambda e: e.detail.get("client_id") == device.client_id
    )
    assert len(events) == 1


def test_expired_code_cannot_be_entered_or_approved(short_lived: LiveServer) -> None:
    device = new_device(short_lived)
    body = device.begin()
    with signed_in(short_lived) as client:
        consent = enter_code(client, body["user_code"])
        assert consent.status_code == 200
        time.sleep(2.3)
        late = decide_on(client, consent, "authorize")  # the page's form expires with the code
        assert late.status_code == 400 and "has expired" in late.text
        assert enter_code(client, body["user_code"]).status_code == 400
    assert error_of(device.poll(body["device_code"])) == "expired_token"


def test_approved_but_not_collected_in_time_expires(short_lived: LiveServer) -> None:
    device = new_device(short_lived)
    body = device.begin()
    approve(short_lived, body["user_code"])
    time.sleep(2.3)
    assert error_of(device.poll(body["device_code"])) == "expired_token"
    assert device_row(short_lived, body["device_code"]).connection_id is None
