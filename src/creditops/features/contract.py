"""The feature contract: what one model consumes, and the Feast objects that serve it, as one value.

A :class:`FeatureContract` names the FeatureService, its ordered features with dtypes, monotone directions
and adverse-action reasons, the entity join key, the target and the protected attributes that ride along.
Training, the Feast definitions and the manifest all read it, so nothing downstream hard-codes which
dataset it is working on. There are two kinds:

* the built-in contract of the synthetic world (:func:`builtin_contract`), generated from
  :mod:`creditops.features.registry` (service ``credit_scoring_v1``, four views, one per group);
* a dataset-spec contract (:func:`creditops.features.spec.spec_contract`), service ``<spec.name>_v1`` over
  one view ``<spec.name>_fv``, with the categorical encoding recorded in ``encodings``.

The contract is JSON-serialisable (``model_dump(mode="json")`` / ``model_validate``), which is how it travels
between pipeline steps in artifact metadata.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from creditops.features.registry import (
    ENTITY,
    FEATURE_SERVICE,
    FEATURES,
    GROUPS,
    JOIN_KEY,
    TIMESTAMP,
)

#: Label and protected attributes of the synthetic world (carried beside the features, never inputs).
BUILTIN_TARGET = "defaulted"
BUILTIN_PROTECTED: tuple[str, ...] = ("sex", "age_band", "race")


class FeatureContract(BaseModel):
    """The model inputs of one dataset and where Feast serves them from.

    Attributes:
        kind: ``builtin`` (synthetic world, feature registry) or ``spec`` (a dataset spec).
        name: Dataset name; for spec datasets the prefix of every Feast object.
        service: FeatureService name (``credit_scoring_v1``, ``<name>_v1``).
        entity: Feast entity name.
        join_key: Entity column (``applicant_id`` or the spec's id column).
        join_key_dtype: ``int`` or ``str``.
        timestamp: Event-timestamp column of the feature tables and the entity frame.
        tables: Feature tables, in order; each is read by the Feast view ``<table>_fv``.
        features: Ordered model inputs (the service order, the training-frame order, the model order).
        dtypes: Feature -> ``float`` | ``int``.
        directions: Feature -> monotone direction (+1 raises risk, -1 lowers it, 0 unconstrained).
        reasons: Feature -> adverse-action reason text.
        target: Label column of the entity frame (0/1, 1 = the bad outcome).
        protected: Protected attributes carried in the entity frame (never features).
        encodings: Categorical source column -> {category value -> one-hot feature column}.
        category_reasons: Categorical source column -> {category value -> adverse-action reason text} (the
            same texts as ``reasons`` of the one-hot columns, keyed the way a spec declares them).
        valid_ranges: Feature -> inclusive (low, high) bounds a scored value must respect (None = open).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["builtin", "spec"]
    name: str
    service: str
    entity: str
    join_key: str
    join_key_dtype: Literal["int", "str"] = "int"
    timestamp: str = TIMESTAMP
    tables: list[str] = Field(min_length=1)
    features: list[str] = Field(min_length=1)
    dtypes: dict[str, Literal["float", "int"]]
    directions: dict[str, int]
    reasons: dict[str, str]
    target: str
    protected: list[str] = Field(default_factory=list)
    encodings: dict[str, dict[str, str]] = Field(default_factory=dict)
    category_reasons: dict[str, dict[str, str]] = Field(default_factory=dict)
    valid_ranges: dict[str, tuple[float | None, float | None]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> FeatureContract:
        if len(set(self.features)) != len(self.features):
            raise ValueError("features contain duplicates")
        banned = sorted(set(self.features) & {*self.protected, self.target, self.join_key, self.timestamp})
        if banned:
            raise ValueError(f"{banned} must never be model inputs")
        for label, mapping in (("dtypes", self.dtypes), ("directions", self.directions)):
            if set(mapping) != set(self.features):
                raise ValueError(f"{label} must name exactly the features")
        return self

    @property
    def views(self) -> list[str]:
        """Feast feature views of the service, in order."""
        return [f"{table}_fv" for table in self.tables]

    @property
    def entity_columns(self) -> list[str]:
        """Columns of the training entity frame: join key, timestamp, target, protected attributes."""
        return [self.join_key, self.timestamp, self.target, *self.protected]


def builtin_contract() -> FeatureContract:
    """The synthetic world's contract, generated from the feature registry (service ``credit_scoring_v1``)."""
    return FeatureContract(
        kind="builtin",
        name="credit_scoring",
        service=FEATURE_SERVICE,
        entity=ENTITY,
        join_key=JOIN_KEY,
        tables=list(GROUPS),
        features=[f.name for f in FEATURES],
        dtypes={f.name: f.dtype for f in FEATURES},
        directions={f.name: int(f.direction) for f in FEATURES},
        reasons={f.name: f.reason for f in FEATURES},
        valid_ranges={f.name: f.valid_range for f in FEATURES if f.valid_range != (None, None)},
        target=BUILTIN_TARGET,
        protected=list(BUILTIN_PROTECTED),
    )
