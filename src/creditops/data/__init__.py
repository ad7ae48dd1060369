"""creditops.data: raw sources, dataset specs, validation with quarantine and content-addressed snapshots.

Modules: :mod:`~creditops.data.synthetic` (generated credit world), :mod:`~creditops.data.real` (German
Credit, HMDA), :mod:`~creditops.data.spec` (bring your own CSV/Parquet), :mod:`~creditops.data.schema`
(raw-table contract), :mod:`~creditops.data.validation`, :mod:`~creditops.data.snapshot`,
:mod:`~creditops.data.ingest`.
"""

from creditops.data.synthetic import CreditWorld, Drift, generate_world

__all__ = ["CreditWorld", "Drift", "generate_world"]
