"""Distributed training through ``xgboost.dask``: same boosting, parameters and Booster, on a Dask cluster.

Selected by ``TrainingConfig.distributed == "dask"`` (``fit_model(..., distributed="dask")``). Locally a
:class:`distributed.LocalCluster` of ``dask_workers`` processes (one thread each) is started and closed around
the fit. On a cluster the same code runs against an existing scheduler:

* **Kubernetes**: deploy a Dask cluster with dask-kubernetes (``KubeCluster`` / the ``DaskCluster`` custom
  resource of the dask-kubernetes operator, worker image = the creditops image) and pass its scheduler address
  (``tcp://<cluster>-scheduler.<namespace>:8786``) as ``scheduler_address``; the KFP training step then only
  needs a client, the workers do the boosting.
* **Any Dask deployment** (dask-gateway, dask-jobqueue, ``dask scheduler`` + ``dask worker`` by hand): same,
  pass the scheduler address.

Each worker holds one partition of the training rows; xgboost's collective (rabit) all-reduces the gradient
histograms between workers, so the resulting ``xgboost.Booster`` is the same type as a single-process fit and
is saved in the same bundle. For data larger than the client's memory, build the ``DaskDMatrix`` from
``dask.dataframe.read_parquet`` on the offline store instead of the in-memory frames used here.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from types import TracebackType
from typing import Any

import pandas as pd
import xgboost as xgb

from creditops.training._common import labels, matrix

log = logging.getLogger(__name__)


class DaskTrainer:
    """Context manager: a Dask client (local cluster or ``scheduler_address``) that trains boosters.

    Args:
        n_workers: worker processes of the local cluster (ignored with ``scheduler_address``).
        scheduler_address: connect to an existing scheduler instead of starting a local cluster.
    """

    def __init__(self, n_workers: int = 2, scheduler_address: str | None = None):
        self.n_workers = n_workers
        self.scheduler_address = scheduler_address
        self._cluster: Any = None
        self._client: Any = None

    def __enter__(self) -> DaskTrainer:
        from distributed import Client, LocalCluster

        if self.scheduler_address:
            self._client = Client(self.scheduler_address)
        else:
            self._cluster = LocalCluster(
                n_workers=self.n_workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                silence_logs=logging.WARNING,
            )
            self._client = Client(self._cluster)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._client is not None:
            self._client.close()
        if self._cluster is not None:
            self._cluster.close()
        self._client = self._cluster = None

    @property
    def workers(self) -> int:
        """Workers the data is partitioned over."""
        if self._client is None:
            return self.n_workers
        return max(1, len(self._client.scheduler_info().get("workers", {})))

    def _dmatrix(self, df: pd.DataFrame, features: Sequence[str], target: str) -> Any:
        import dask.array as da
        from xgboost import dask as dxgb

        x = matrix(df, features)
        y = labels(df, target)
        rows = max(1, math.ceil(len(x) / self.workers))
        return dxgb.DaskDMatrix(
            self._client,
            da.from_array(x, chunks=(rows, x.shape[1])),
            da.from_array(y, chunks=(rows,)),
            feature_names=list(features),
        )

    def train(
        self,
        params: dict[str, Any],
        train: pd.DataFrame,
        valid: pd.DataFrame | None,
        features: Sequence[str],
        target: str,
        num_boost_round: int,
        early_stopping_rounds: int | None = None,
    ) -> xgb.Booster:
        """Train on the cluster; returns a plain ``xgboost.Booster`` (``best_iteration`` set)."""
        from xgboost import dask as dxgb

        if self._client is None:
            raise RuntimeError("DaskTrainer must be used as a context manager")
        # One thread per worker process: the workers already use every core between them.
        params = {**params, "nthread": 1}
        dtrain = self._dmatrix(train, features, target)
        evals = [(self._dmatrix(valid, features, target), "valid")] if valid is not None else None
        out = dxgb.train(
            self._client,
            params,
            dtrain,
            num_boost_round=num_boost_round,
            evals=evals,
            early_stopping_rounds=early_stopping_rounds if evals else None,
            verbose_eval=False,
        )
        booster: xgb.Booster = out["booster"]
        if not booster.feature_names:
            booster.feature_names = list(features)
        return booster
