"""KServe predictor of creditops: probability of default, score, decision and reason codes (V1 and V2).

Run as ``python -m predictor`` with ``PYTHONPATH=kserve``; see :mod:`predictor.__main__` for the arguments,
:mod:`predictor.payload` for the request and answer shapes.
"""

from typing import Any

__all__ = ["CreditPredictor"]


def __getattr__(name: str) -> Any:
    # Lazy: importing the package (e.g. predictor.testing) must not pull kserve and the whole core in.
    if name == "CreditPredictor":
        from predictor.model import CreditPredictor

        return CreditPredictor
    raise AttributeError(name)
