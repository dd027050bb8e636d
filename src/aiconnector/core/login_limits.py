"""Limits on guessing a person's password that an attacker cannot turn against that person.

A human password is guessable, so guesses must be bounded per account; but a plain per-account
lockout lets anyone lock the real person out by typing wrong passwords for their username. So
the limits are layered, and each attempt is counted under keys that tie it to where it comes
from (``ratelimit.spend``: reserved before the password is checked, so a burst of concurrent
attempts cannot slip past; given back when the password was right or was not checked):

* **(account, address)** — ``per_pair_minute`` and ``per_pair_hour``: one address guessing one
  account is stopped quickly, and only that address is;
* **address** — ``per_address_minute``: one address trying many usernames;
* **account, from everywhere** — ``per_account_hour``, the slow global bound against guessing
  from many addresses. Past ``delay_after`` failures in the hour every attempt first waits
  (doubling from ``first_delay`` up to ``max_delay``); past ``per_account_hour`` attempts are
  refused until the hour ends;
* a **known device** — a browser holding a signed cookie from an earlier successful sign-in to
  this account (``web.known_device``) — is counted under (account, device) instead of
  (account, address) and is exempt from the address limit, the delay and the account limit.
  So the real person signs in from their usual browser whatever an attacker does elsewhere.

The delay holds no database connection while it sleeps, and at most ``max_delayed`` attempts
sleep at once per instance; past that they are refused with a short ``Retry-After`` rather
than queued, so delays cannot be used to pile up requests. docs/security.md states the bounds
these defaults give."""

from __future__ import annotations

import asyncio
import hashlib
import math
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from aiconnector.core.ratelimit import Budget, Spent, address_bucket, counts, refund, spend
from aiconnector.errors import RateLimited

MINUTE, HOUR = 60, 3600


@dataclass(frozen=True, slots=True)
class LoginLimits:
    per_pair_minute: int = 5
    per_pair_hour: int = 20
    # Higher than per pair: an office or a carrier NAT puts many people behind one address.
    per_address_minute: int = 20
    per_account_hour: int = 100
    delay_after: int = 10
    first_delay: float = 0.25
    max_delay: float = 2.0
    max_delayed: int = 16


class LoginRefused(RateLimited):
    """Not checked: ``limit`` names the limit that refused (``pair``, ``address``,
    ``account`` or ``busy``), for the audit log; the message is for the person."""

    def __init__(self, limit: str, message: str, retry_after: int) -> None:
        super().__init__(message, retry_after)
        self.limit = limit


def _digest(*parts: str) -> str:
    """Keys hold digests, not usernames: a counter key has a bounded length and the table
    does not list who was targeted (the audit log does that)."""
    return hashlib.sha256("\n".join(parts).encode("utf-8", "replace")).hexdigest()


def _wait_text(seconds: int) -> str:
    return f"{seconds} seconds" if seconds < 120 else f"{math.ceil(seconds / 60)} minutes"


@dataclass(frozen=True, slots=True)
class Attempt:
    """One sign-in attempt's reservations, counted as a failure unless handed back to
    ``LoginGuard.release``."""

    spent: list[Spent]


class LoginGuard:
    """Decides whether a sign-in attempt may be checked, and keeps the counts (shared by
    every instance through the database)."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], limits: LoginLimits | None = None) -> None:
        self._sessions = sessions
        self.limits = limits or LoginLimits()
        self._delayed = 0  # attempts sleeping now, on this instance (one event loop)

    def _budgets(self, login: str, ip: str, device: str | None) -> dict[str, Budget]:
        name, lim = login.lower(), self.limits
        origin = f"device:{device}" if device is not None else f"ip:{address_bucket(ip)}"
        pair = _digest(name, origin)
        budgets = {
            "pair": Budget(f"login:pair-m:{pair}", lim.per_pair_minute, MINUTE),
            "pair-hour": Budget(f"login:pair-h:{pair}", lim.per_pair_hour, HOUR),
            # Known devices count here too (a stolen device cookie still adds to the bound),
            # but are never refused by it.
            "account": Budget(f"login:account:{_digest(name)}", lim.per_account_hour, HOUR),
        }
        if device is None:
            budgets["address"] = Budget(f"login:ip:{address_bucket(ip)}", lim.per_address_minute, MINUTE)
        return budgets

    def _refusal(self, spent: dict[str, Spent], known_device: bool) -> LoginRefused | None:
        """The first limit these counts are past, as the error to raise; None when within."""
        for name in ("pair", "pair-hour"):
            if spent[name].over:
                wait = spent[name].retry_after
                return LoginRefused(
                    "pair",
                    f"Too many failed sign-in attempts. Wait {_wait_text(wait)} and try again.",
                    wait,
                )
        if known_device:
            return None
        if spent["address"].over:
            wait = spent["address"].retry_after
            return LoginRefused(
                "address",
                f"Too many failed sign-in attempts from your network. Wait {_wait_text(wait)} and try again.",
                wait,
            )
        if spent["account"].over:
            wait = spent["account"].retry_after
            return LoginRefused(
                "account",
                "Too many failed sign-in attempts for this account from other places. Sign in from "
                f"a browser you have signed in with before, or wait {_wait_text(wait)}.",
                wait,
            )
        return None

    def delay_for(self, account_failures: int) -> float:
        """Seconds an attempt waits when the account already has this many failures in the
        hour: none up to ``delay_after``, then doubling, capped at ``max_delay``."""
        lim = self.limits
        if account_failures < lim.delay_after:
            return 0.0
        return min(lim.max_delay, lim.first_delay * 2 ** (account_failures - lim.delay_after))

    async def admit(self, login: str, ip: str, device: str | None) -> Attempt:
        """Reserve this attempt, waiting first if the account is under attack; raise
        ``LoginRefused`` (nothing stays counted) when a limit says no."""
        budgets = self._budgets(login, ip, device)
        names = list(budgets)
        # A cheap read first: a caller already past a limit is refused without a write.
        looked = dict(zip(names, await counts(self._sessions, list(budgets.values())), strict=True))
        ahead = {n: Spent(s.budget, s.window_start, s.count + 1) for n, s in looked.items()}
        if (refused := self._refusal(ahead, device is not None)) is not None:
            raise refused
        spent = dict(zip(names, await spend(self._sessions, list(budgets.values())), strict=True))
        if (refused := self._refusal(spent, device is not None)) is not None:
            await refund(self._sessions, list(spent.values()))
            raise refused
        attempt = Attempt(list(spent.values()))
        if device is None:
            await self._wait(spent["account"].count - 1, attempt)
        return attempt

    async def _wait(self, account_failures: int, attempt: Attempt) -> None:
        seconds = self.delay_for(account_failures)
        if seconds <= 0:
            return
        if self._delayed >= self.limits.max_delayed:
            await refund(self._sessions, attempt.spent)
            wait = math.ceil(self.limits.max_delay)
            raise LoginRefused("busy", f"Too many sign-in attempts right now. Wait {wait} seconds.", wait)
        self._delayed += 1
        try:
            await asyncio.sleep(seconds)
        except BaseException:
            await asyncio.shield(refund(self._sessions, attempt.spent))  # the client went away
            raise
        finally:
            self._delayed -= 1

    async def release(self, attempt: Attempt) -> None:
        """The attempt was no failure (the right password, or one that could not be checked
        because the site was unavailable): give its reservations back. A wrong password
        needs no call: its reservation simply stays counted."""
        await refund(self._sessions, attempt.spent)
