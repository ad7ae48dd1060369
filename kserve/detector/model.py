"""``DriftDetector``: a kserve.Model whose predict tests a batch of served inputs for drift.

Inputs are the contract's raw fields, as the predictor takes them; they are encoded by the contract and
compared column by column (the model's columns) with the bundle's reference sample.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from kserve.errors import InvalidInput
from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse

import kserve
from creditops.artifact import load_bundle
from creditops.monitoring.drift import Correction, DriftReport
from creditops.serving import encoder_for
from detector.backends import BACKENDS, DriftBackend
from explainer.payload import encode, frame_from_payload


class DriftDetector(kserve.Model):
    """Per-feature drift (KS, multiple-test correction, PSI) of a request batch vs the bundle's reference.

    Args:
        name: Model name in the URL (``/v1/models/<name>:predict``, ``/v2/models/<name>/infer``).
        bundle_dir: Directory of the model bundle; its ``reference.parquet`` is the reference sample.
        backend: ``scipy`` (default, core env) or ``alibi-detect`` (alibi env only).
        alpha: Significance level for the adjusted p-values.
        correction: ``bonferroni`` or ``fdr_bh``.
        bins: Quantile bins for PSI.
        min_rows: Smallest batch worth testing; fewer rows is a 400.
    """

    def __init__(
        self,
        name: str,
        bundle_dir: str | Path,
        backend: str = "scipy",
        alpha: float = 0.05,
        correction: Correction = "bonferroni",
        bins: int = 10,
        min_rows: int = 2,
    ) -> None:
        super().__init__(name)
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {sorted(BACKENDS)}, got {backend!r}")
        self.bundle_dir = Path(bundle_dir)
        self.backend = backend
        self.alpha = alpha
        self.correction = correction
        self.bins = bins
        self.min_rows = min_rows
        self.features_: list[str] = []
        self.encoder_: Any = None
        self.detect_: DriftBackend | None = None

    def load(self) -> bool:
        """Load the bundle, check its reference sample, build the backend and mark the model ready.

        Raises:
            creditops.errors.BundleError: The bundle is missing, corrupt or inconsistent.
            ValueError: The reference sample is too small to test against.
        """
        bundle = load_bundle(self.bundle_dir)
        if len(bundle.reference) < self.min_rows:
            raise ValueError(
                f"bundle {self.bundle_dir}: reference sample has only {len(bundle.reference)} rows"
            )
        self.encoder_ = encoder_for(bundle)  # BundleError for a bundle without a contract
        self.features_ = list(bundle.features)
        reference = bundle.reference[self.features_]
        self.detect_ = BACKENDS[self.backend](
            reference, self.features_, self.alpha, self.correction, self.bins
        )
        self.ready = True
        return self.ready

    def predict(
        self, payload: dict[str, Any] | InferRequest, headers: dict[str, str] | None = None
    ) -> dict[str, Any] | InferResponse:
        """Test the batch: V1 ``{"instances": [...]}`` gets the JSON report, a V2 request a tensor response.

        Raises:
            kserve.errors.InvalidInput: Malformed request or too few rows (HTTP 400 naming the field).
        """
        if self.detect_ is None:
            raise RuntimeError(f"model {self.name} is not loaded")
        enc = self.encoder_
        matrix = encode(enc, frame_from_payload(payload, enc.fields, frozenset(enc.categorical)))
        current = pd.DataFrame(matrix, columns=self.features_)
        if len(current) < self.min_rows:
            raise InvalidInput(f"instances: drift needs at least {self.min_rows} rows, got {len(current)}")
        report = self.detect_(current)
        if isinstance(payload, InferRequest):
            return _infer_response(self.name, payload.id, report)
        return {"model_name": self.name, "backend": self.backend, **report.to_dict()}


def _infer_response(model_name: str, request_id: str | None, report: DriftReport) -> InferResponse:
    """V2 outputs: ``is_drift`` [1] and per-feature tensors in manifest order (names in parameters)."""
    names = [f.name for f in report.features]
    per_feature = {
        "feature_drift": np.array([f.drifted for f in report.features], dtype=bool),
        "p_adjusted": np.array([f.p_adjusted for f in report.features]),
        "p_value": np.array([f.p_value for f in report.features]),
        "ks_stat": np.array([f.ks_stat for f in report.features]),
        "psi": np.array([f.psi for f in report.features]),
    }
    outputs = [InferOutput("is_drift", [1], "BOOL", [report.drifted])]
    for name, values in per_feature.items():
        output = InferOutput(name, [len(names)], "BOOL" if values.dtype == bool else "FP64")
        output.set_data_from_numpy(values, binary_data=False)
        outputs.append(output)
    return InferResponse(
        response_id=request_id or "",
        model_name=model_name,
        infer_outputs=outputs,
        parameters={"features": ",".join(names), "correction": report.correction, "alpha": report.alpha},
    )
