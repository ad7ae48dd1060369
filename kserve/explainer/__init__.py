"""KServe explainer for creditops bundles: answers ``:explain`` with TreeSHAP contributions and reasons.

Run: ``PYTHONPATH=kserve python -m explainer --bundle DIR [--backend treeshap|alibi] [--model_name NAME]``.
The package imports nothing heavy here so ``explainer.payload`` can be reused by the drift detector.
"""
