"""Online feature lookup for applicant ids through the FeatureService ``credit_scoring_v1``.

:class:`CoalescingLookup` merges the lookups of requests that reach it in the same event-loop turn into one
online-store read (one Redis pipeline instead of one per request): under concurrent load most of a lookup's
cost is per call, not per row.

Same result as ``feast_repo.store.online_features`` but built for the request path: the FeatureService is
looked up once (Feast rebuilds it from the registry proto on every ``get_feature_service``, ~3-10 ms) and the
answer is read with ``to_dict`` instead of ``to_df`` (~0.4 ms against ~3 ms for one row).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import numpy as np

from creditops.features.registry import FEATURE_SERVICE, JOIN_KEY
from predictor import metrics


class OnlineFeatures:
    """Callable ``ids -> float matrix`` (rows in request order, columns ``features``; NaN = no value)."""

    def __init__(self, store: Any, features: Sequence[str]):
        self.store = store
        self.features = list(features)
        self.service = store.get_feature_service(FEATURE_SERVICE)

    def __call__(self, applicant_ids: Sequence[int]) -> np.ndarray:
        """Current feature values of ``applicant_ids`` (one row each, request order)."""
        rows = [{JOIN_KEY: int(i)} for i in applicant_ids]
        values = self.store.get_online_features(features=self.service, entity_rows=rows).to_dict()
        return np.array([values[f] for f in self.features], dtype=np.float64).T  # None -> nan


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
