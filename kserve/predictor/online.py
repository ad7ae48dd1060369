"""Online feature lookup for applicant ids, coalesced across concurrent requests.

:class:`CoalescingLookup` merges the lookups of requests that reach it in the same event-loop turn into one
online-store read (one Redis pipeline instead of one per request): under concurrent load most of a lookup's
cost is per call, not per row.

The per-call lookup itself is :class:`feast_repo.store.OnlineFeatures` (the FeatureService fetched once).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from predictor import metrics

if TYPE_CHECKING:  # Feast imports are slow; the model imports the lookup only when a repo is given
    from feast_repo.store import OnlineFeatures


class CoalescingLookup:
    """Async front of an :class:`OnlineFeatures`: concurrent requests share one store read per loop turn."""

    def __init__(self, lookup: OnlineFeatures):
        self.lookup = lookup
        self._pending: list[tuple[list[int], asyncio.Future[np.ndarray]]] = []

    async def __call__(self, applicant_ids: Sequence[int]) -> np.ndarray:
        """Feature rows of ``applicant_ids`` (raises what the store raised, for every merged request)."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[np.ndarray] = loop.create_future()
        self._pending.append((list(applicant_ids), fut))
        if len(self._pending) == 1:
            loop.call_soon(self._flush)
        return await fut

    def _flush(self) -> None:
        batch, self._pending = self._pending, []
        all_ids = [i for ids, _ in batch for i in ids]
        metrics.ONLINE_READS.inc()
        metrics.ONLINE_ROWS.inc(len(all_ids))
        try:
            matrix = self.lookup(all_ids)
        except Exception as exc:  # handed to each waiting request
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(exc)
            return
        start = 0
        for ids, fut in batch:
            if not fut.done():  # a cancelled request (client gone) just drops its rows
                fut.set_result(matrix[start : start + len(ids)])
            start += len(ids)
