"""Online feature lookup for applicant ids through the FeatureService ``credit_scoring_v1``.

Same result as ``feast_repo.store.online_features`` but built for the request path: the FeatureService is
looked up once (Feast rebuilds it from the registry proto on every ``get_feature_service``, ~3-10 ms) and the
answer is read with ``to_dict`` instead of ``to_df`` (~0.4 ms against ~3 ms for one row).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from creditops.features.registry import FEATURE_SERVICE, JOIN_KEY


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
