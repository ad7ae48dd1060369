"""The model bundle: the one place that saves and loads a model (booster + manifest + reference sample).

A bundle is a directory with exactly three files and no pickles:

* ``model.ubj``: the XGBoost booster (UBJSON, xgboost's own portable format);
* ``manifest.json``: :class:`Manifest`, everything needed to use the model safely: the feature service name
  and ordered features, dtypes, monotone directions, adverse-action reason texts, the isotonic calibration as
  x/y arrays, score scaling, decision thresholds, metrics, data version, library versions, target, protected
  attributes, and the whole :class:`~creditops.features.contract.FeatureContract` (``contract``: encodings of
  categoricals, valid ranges, join key, feature service), which is all a server needs to read requests;
* ``reference.parquet``: a sample of training inputs, the reference distribution for drift monitoring.

Like ``mlflow.xgboost`` save/load with its MLmodel signature, but self-describing for credit decisions.
"""

from __future__ import annotations

import json
import math
import os
import platform
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import xgboost as xgb
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from creditops.errors import BundleError
from creditops.features.contract import FeatureContract, builtin_contract

MODEL_FILE = "model.ubj"
MANIFEST_FILE = "manifest.json"
REFERENCE_FILE = "reference.parquet"
BUNDLE_FILES = (MODEL_FILE, MANIFEST_FILE, REFERENCE_FILE)
#: Written into a bundle by the registry once it is a registered version (``{"model_name", "version"}``),
#: so a server given the bundle's files alone (a KServe ``storageUri``) labels decisions ``<name>@<version>``.
REGISTRATION_FILE = "registration.json"
#: PDs are clipped to [PD_CLIP, 1 - PD_CLIP] before converting to log-odds score points.
PD_CLIP = 1e-6
_VERSIONED = ("xgboost", "numpy", "pandas", "scikit-learn", "pyarrow", "pydantic", "creditops")

Decision = Literal["approve", "review", "decline"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Calibration(_Strict):
    """Isotonic map raw probability -> calibrated PD, applied with ``np.interp`` (clipped at the ends)."""

    x: list[float]
    y: list[float]

    @model_validator(mode="after")
    def _check(self) -> Calibration:
        if not self.x or len(self.x) != len(self.y):
            raise ValueError("calibration x and y must be non-empty and of equal length")
        if any(b < a for a, b in zip(self.x, self.x[1:], strict=False)):
            raise ValueError("calibration x must be non-decreasing")
        if any(b < a for a, b in zip(self.y, self.y[1:], strict=False)):
            raise ValueError("calibration y must be non-decreasing (isotonic)")
        if min(self.y) < 0.0 or max(self.y) > 1.0:
            raise ValueError("calibration y must lie in [0, 1]")
        return self

    @classmethod
    def identity(cls) -> Calibration:
        """No calibration (raw probability = PD)."""
        return cls(x=[0.0, 1.0], y=[0.0, 1.0])


class ScoreScaling(_Strict):
    """Points to double the odds: ``base_score`` points at good:bad odds ``base_odds``, +``pdo`` per 2x."""

    base_score: float = 600.0
    base_odds: float = Field(50.0, gt=0)
    pdo: float = Field(20.0, gt=0)

    @property
    def factor(self) -> float:
        """Points per unit of log-odds: pdo / ln 2."""
        return self.pdo / math.log(2.0)

    @property
    def offset(self) -> float:
        """base_score - factor * ln(base_odds)."""
        return self.base_score - self.factor * math.log(self.base_odds)


class Thresholds(_Strict):
    """Rule: approve if pd < approve_below_pd, decline if pd >= decline_at_or_above_pd, else review."""

    approve_below_pd: float = Field(ge=0.0, le=1.0)
    decline_at_or_above_pd: float = Field(ge=0.0, le=1.0)
    rule: str = ""

    @model_validator(mode="after")
    def _ordered(self) -> Thresholds:
        if self.approve_below_pd > self.decline_at_or_above_pd:
            raise ValueError(
                f"approve_below_pd ({self.approve_below_pd}) must not exceed "
                f"decline_at_or_above_pd ({self.decline_at_or_above_pd})"
            )
        return self


class Manifest(_Strict):
    """Everything a server, a gate or an auditor needs to know about one model (``manifest.json``)."""

    schema_version: int = 1
    model_name: str
    feature_service: str
    features: list[str] = Field(min_length=1)
    dtypes: dict[str, str]
    directions: dict[str, int]
    reasons: dict[str, str]
    calibration: Calibration
    score_scaling: ScoreScaling
    thresholds: Thresholds
    metrics: dict[str, float] = Field(default_factory=dict)
    params: dict[str, Any] = Field(default_factory=dict)
    data_version: str | None = None
    library_versions: dict[str, str] = Field(default_factory=dict)
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    target: str
    protected: list[str] = Field(default_factory=list)
    valid_ranges: dict[str, tuple[float | None, float | None]] = Field(default_factory=dict)
    #: The feature contract the model was trained on (absent in bundles written before it was embedded).
    contract: FeatureContract | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Manifest:
        if len(set(self.features)) != len(self.features):
            raise ValueError("features contain duplicates")
        protected_inputs = sorted(set(self.features) & set(self.protected))
        if protected_inputs:
            raise ValueError(f"protected attribute(s) {protected_inputs} must never be model inputs")
        if self.target in self.features:
            raise ValueError(f"target {self.target!r} listed as a feature")
        for name, mapping in (
            ("dtypes", self.dtypes),
            ("directions", self.directions),
            ("reasons", self.reasons),
            ("valid_ranges", self.valid_ranges),
        ):
            unknown = sorted(set(mapping) - set(self.features))
            if unknown:
                raise ValueError(f"{name} names unknown feature(s) {unknown}")
        bad = {k: v for k, v in self.directions.items() if v not in (-1, 0, 1)}
        if bad:
            raise ValueError(f"directions must be -1, 0 or 1: {bad}")
        c = self.contract
        if c is not None and (c.features != self.features or c.service != self.feature_service):
            raise ValueError(
                f"contract (service {c.service!r}, {len(c.features)} features) differs from the manifest's "
                f"feature service {self.feature_service!r} and features"
            )
        return self

    def feature_contract(self) -> FeatureContract:
        """The contract servers read requests with: the embedded one, or derived for an older bundle.

        A bundle written before the contract was embedded is derived only when it was trained on the
        built-in ``credit_scoring_v1`` (whose contract the feature registry still defines exactly, checked
        feature by feature); any other such bundle is refused, because its categorical encoding is lost.

        Raises:
            BundleError: no embedded contract and not derivable (the message says what to do).
        """
        if self.contract is not None:
            return self.contract
        builtin = builtin_contract()
        if self.feature_service == builtin.service and self.features == builtin.features:
            return builtin.model_copy(update={"reasons": {**builtin.reasons, **self.reasons}})
        raise BundleError(
            f"model {self.model_name!r} (feature service {self.feature_service!r}) has no feature contract "
            "in its manifest (bundle written before contracts were embedded) and it cannot be derived: "
            "retrain the model to serve it"
        )


def library_versions() -> dict[str, str]:
    """Installed versions of the libraries a bundle depends on (+ python)."""
    out = {"python": platform.python_version()}
    for dist in _VERSIONED:
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "unknown"
    return out


@dataclass
class Bundle:
    """A loaded model bundle.

    ``predict_pd`` takes the features in manifest order (DataFrame by name, numpy array or one mapping);
    ``score_points`` and ``decide`` are vectorised over PDs (a scalar in gives a scalar out).
    """

    booster: xgb.Booster
    manifest: Manifest
    reference: pd.DataFrame
    path: Path | None = None
    version: str | None = None
    _cal_x: np.ndarray = field(init=False, repr=False)
    _cal_y: np.ndarray = field(init=False, repr=False)
    _index: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._cal_x = np.asarray(self.manifest.calibration.x, dtype=np.float64)
        self._cal_y = np.asarray(self.manifest.calibration.y, dtype=np.float64)
        self._index = {name: i for i, name in enumerate(self.manifest.features)}

    @property
    def features(self) -> list[str]:
        """Ordered model inputs."""
        return self.manifest.features

    @property
    def contract(self) -> FeatureContract:
        """The feature contract (:meth:`Manifest.feature_contract`; raises BundleError if there is none)."""
        contract = self.__dict__.get("_contract")
        if contract is None:
            contract = self.__dict__["_contract"] = self.manifest.feature_contract()
        return contract

    def to_matrix(self, X: pd.DataFrame | np.ndarray | Mapping[str, Any]) -> np.ndarray:
        """Features in manifest order as a 2-D float32 array.

        Raises:
            BundleError: a feature is missing or the array has the wrong number of columns.
        """
        feats = self.manifest.features
        if isinstance(X, pd.DataFrame):
            missing = [f for f in feats if f not in X.columns]
            if missing:
                raise BundleError(f"input lacks model feature(s) {missing}")
            arr = X.loc[:, feats].to_numpy(dtype=np.float32, na_value=np.nan)
        elif isinstance(X, Mapping):
            missing = [f for f in feats if f not in X]
            if missing:
                raise BundleError(f"input lacks model feature(s) {missing}")
            arr = np.array([[X[f] for f in feats]], dtype=np.float32)
        else:
            arr = np.asarray(X, dtype=np.float32)
            if arr.ndim == 1:
                arr = arr.reshape(1, -1)
        if arr.ndim != 2 or arr.shape[1] != len(feats):
            raise BundleError(f"expected {len(feats)} feature columns, got array of shape {arr.shape}")
        return np.ascontiguousarray(arr)

    def predict_raw(self, X: pd.DataFrame | np.ndarray | Mapping[str, Any]) -> np.ndarray:
        """Uncalibrated model probability (``inplace_predict``: no DMatrix per call)."""
        return np.asarray(
            self.booster.inplace_predict(self.to_matrix(X), validate_features=False), np.float64
        )

    def predict_pd(self, X: pd.DataFrame | np.ndarray | Mapping[str, Any]) -> np.ndarray:
        """Calibrated probability of default, shape (n_rows,)."""
        return np.interp(self.predict_raw(X), self._cal_x, self._cal_y)

    def score_points(self, pd_: float | np.ndarray | Sequence[float]) -> Any:
        """Credit score points: offset + factor * ln((1 - pd) / pd), pd clipped to [1e-6, 1 - 1e-6]."""
        s = self.manifest.score_scaling
        p = np.clip(np.asarray(pd_, dtype=np.float64), PD_CLIP, 1.0 - PD_CLIP)
        points = s.offset + s.factor * np.log((1.0 - p) / p)
        return float(points) if points.ndim == 0 else points

    def decide(self, pd_: float | np.ndarray | Sequence[float]) -> Any:
        """``approve`` (pd < approve_below_pd), ``decline`` (pd >= decline_at_or_above_pd) or ``review``."""
        t = self.manifest.thresholds
        p = np.asarray(pd_, dtype=np.float64)
        out = np.where(
            p >= t.decline_at_or_above_pd, "decline", np.where(p < t.approve_below_pd, "approve", "review")
        ).astype(object)
        return str(out) if out.ndim == 0 else out

    def contributions(self, X: pd.DataFrame | np.ndarray | Mapping[str, Any]) -> pd.DataFrame:
        """TreeSHAP contributions (xgboost ``pred_contribs``) in margin (log-odds) units: features + ``bias``.

        Each row sums to the raw margin of that row.
        """
        dm = xgb.DMatrix(self.to_matrix(X), feature_names=self.manifest.features)
        contribs = self.booster.predict(dm, pred_contribs=True, validate_features=False)
        index = X.index if isinstance(X, pd.DataFrame) else None
        return pd.DataFrame(contribs, columns=[*self.manifest.features, "bias"], index=index)


def save_bundle(
    bundle_dir: str | Path,
    booster: xgb.Booster,
    manifest: Manifest,
    reference: pd.DataFrame,
    contract: FeatureContract | None = None,
) -> Path:
    """Write ``model.ubj``, ``manifest.json`` and ``reference.parquet`` into ``bundle_dir``.

    Files are written to temporary names and renamed, so a reader never sees a half-written file.

    Args:
        bundle_dir: Directory to write.
        booster: The trained model.
        manifest: Its manifest.
        reference: Training-input sample (drift reference).
        contract: The feature contract the model was trained on, embedded whole in the manifest (wins
            over one the manifest already carries).

    Raises:
        BundleError: the booster does not match the manifest features, the contract does not match the
            manifest, or the reference lacks features.
    """
    if contract is not None:
        try:
            manifest = Manifest.model_validate({**manifest.model_dump(), "contract": contract})
        except ValidationError as exc:
            raise BundleError(f"cannot embed the feature contract: {exc.errors()[0]['msg']}") from exc
    if booster.num_features() != len(manifest.features):
        raise BundleError(
            f"booster has {booster.num_features()} features but the manifest lists {len(manifest.features)}"
        )
    if booster.feature_names and list(booster.feature_names) != list(manifest.features):
        raise BundleError(
            f"booster feature names {booster.feature_names} differ from manifest features {manifest.features}"
        )
    missing = [f for f in manifest.features if f not in reference.columns]
    if missing:
        raise BundleError(f"reference sample lacks feature(s) {missing}")
    out = Path(bundle_dir)
    out.mkdir(parents=True, exist_ok=True)
    if not manifest.library_versions:
        manifest = manifest.model_copy(update={"library_versions": library_versions()})
    _atomic(out / MODEL_FILE, lambda p: booster.save_model(str(p)))
    _atomic(out / MANIFEST_FILE, lambda p: p.write_text(manifest.model_dump_json(indent=2) + "\n"))
    _atomic(out / REFERENCE_FILE, lambda p: reference.reset_index(drop=True).to_parquet(p, index=False))
    return out


def _atomic(target: Path, write: Any) -> None:
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.stem}-", suffix=target.suffix)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_manifest(bundle_dir: str | Path) -> Manifest:
    """Parse and validate ``manifest.json`` only (cheap: no model load).

    Raises:
        BundleError: missing, not JSON, or invalid (the message names the fields).
    """
    path = Path(bundle_dir) / MANIFEST_FILE
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise BundleError(f"bundle {bundle_dir}: {MANIFEST_FILE} is missing") from exc
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"bundle {bundle_dir}: {MANIFEST_FILE} is not valid JSON ({exc})") from exc
    try:
        return Manifest.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in exc.errors()
        )
        raise BundleError(f"bundle {bundle_dir}: invalid {MANIFEST_FILE}: {problems}") from exc


def load_bundle(bundle_dir: str | Path) -> Bundle:
    """Load and validate a bundle.

    Raises:
        BundleError: directory or a file missing, manifest invalid, model unreadable, or the model's number of
            features (or feature names) disagreeing with the manifest.
    """
    root = Path(bundle_dir)
    if not root.is_dir():
        raise BundleError(f"bundle directory {root} does not exist")
    missing = [name for name in BUNDLE_FILES if not (root / name).is_file()]
    if missing:
        raise BundleError(f"bundle {root} is incomplete: missing {', '.join(missing)}")
    manifest = read_manifest(root)
    booster = xgb.Booster()
    try:
        booster.load_model(str(root / MODEL_FILE))
    except xgb.core.XGBoostError as exc:
        raise BundleError(f"bundle {root}: cannot load {MODEL_FILE}: {str(exc).splitlines()[0]}") from exc
    if booster.num_features() != len(manifest.features):
        raise BundleError(
            f"bundle {root}: model expects {booster.num_features()} features but the manifest lists "
            f"{len(manifest.features)}"
        )
    if booster.feature_names and list(booster.feature_names) != manifest.features:
        raise BundleError(f"bundle {root}: model feature names differ from the manifest's feature order")
    try:
        reference = pd.read_parquet(root / REFERENCE_FILE)
    except Exception as exc:  # pyarrow raises several types for corrupt files
        raise BundleError(f"bundle {root}: cannot read {REFERENCE_FILE}: {exc}") from exc
    absent = [f for f in manifest.features if f not in reference.columns]
    if absent:
        raise BundleError(f"bundle {root}: {REFERENCE_FILE} lacks feature(s) {absent}")
    # Single-row requests: one thread avoids OpenMP start-up cost that dominates tiny predictions.
    booster.set_param({"nthread": 1})
    return Bundle(
        booster=booster, manifest=manifest, reference=reference, path=root, version=_registered(root)
    )


def _registered(root: Path) -> str | None:
    """The registered version recorded in the bundle (:data:`REGISTRATION_FILE`), None before registration."""
    path = root / REGISTRATION_FILE
    if not path.is_file():
        return None
    try:
        version = json.loads(path.read_text(encoding="utf-8"))["version"]
    except (ValueError, KeyError, TypeError) as exc:
        raise BundleError(f"bundle {root}: unreadable {REGISTRATION_FILE}: {exc}") from None
    if not isinstance(version, str | int) or not str(version).isdigit():
        raise BundleError(f"bundle {root}: {REGISTRATION_FILE} version must be a number, got {version!r}")
    return str(version)


def check_feature_contract(manifest: Manifest, expected_features: Sequence[str], service_name: str) -> None:
    """Make sure a model consumes exactly the feature service it will be fed from, in the same order.

    Raises:
        BundleError: the service name differs, or features are missing, extra or misordered (all named).
    """
    problems = []
    if manifest.feature_service != service_name:
        problems.append(
            f"model was trained on feature service {manifest.feature_service!r}, not {service_name!r}"
        )
    expected = list(expected_features)
    missing = [f for f in expected if f not in manifest.features]
    extra = [f for f in manifest.features if f not in expected]
    if missing:
        problems.append(f"missing feature(s) {missing}")
    if extra:
        problems.append(f"extra feature(s) {extra}")
    if not missing and not extra and expected != manifest.features:
        wrong = [
            f"{f!r} at position {i} (service has it at {expected.index(f)})"
            for i, f in enumerate(manifest.features)
            if expected[i] != f
        ]
        problems.append("misordered feature(s): " + ", ".join(wrong))
    if problems:
        raise BundleError(f"feature contract with {service_name!r} broken: " + "; ".join(problems))
