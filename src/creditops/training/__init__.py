"""Automated training: split, tune (Optuna + MLflow), fit (monotone XGBoost, CV, calibration, thresholds).

Every function takes ``features``, ``directions`` and ``target`` explicitly, so the same code trains on the
synthetic world, on a user's dataset described by a spec and on tiny test frames. Protected attributes ride
along in the frames for fairness evaluation but are refused as model inputs
(:class:`ProtectedAttributeError`).
"""

from creditops.training._common import DEFAULT_PROTECTED, ProtectedAttributeError, check_inputs

__all__ = ["DEFAULT_PROTECTED", "ProtectedAttributeError", "check_inputs"]
