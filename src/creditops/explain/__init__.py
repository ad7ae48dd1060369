"""Exact TreeSHAP contributions of a model bundle (the engine only; reasons: ``creditops.serving``)."""

from creditops.explain.treeshap import TreeShap, contributions, contributions_array, explainer_for

__all__ = ["TreeShap", "contributions", "contributions_array", "explainer_for"]
