"""A background job run every N seconds for the server's lifetime (housekeeping such as
purging unused dynamic clients). Failures are logged and the job tries again next time."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


class PeriodicTask:
    def __init__(self, name: str, job: Callable[[], Awaitable[object]], interval: float) -> None:
        self._name = name
        self._job = job
        self._interval = interval
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self._name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            try:
                await self._job()
            except Exception:
                log.warning(
                    "periodic job %s failed; retrying in %s s", self._name, self._interval, exc_info=True
                )
            await asyncio.sleep(self._interval)
