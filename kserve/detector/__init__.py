"""KServe drift detector for creditops bundles: a batch of served inputs against the bundle's reference.

Run: ``PYTHONPATH=kserve python -m detector --bundle DIR [--backend scipy|alibi-detect]``.
"""
