"""Typed configuration, parsed once at the edge.

One YAML file (or none: every field has an embedded default) is read by :func:`load_config`. ``${VAR}`` and
``${VAR:-default}`` are expanded from the environment before validation, so one file serves every environment
instead of a copy per environment. Unknown keys are errors (``extra="forbid"``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from creditops.errors import ConfigError

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataConfig(_Section):
    """Where the data comes from."""

    source: Literal["synthetic", "german_credit", "hmda", "spec"] = "synthetic"
    n_applicants: int = Field(20_000, ge=100)
    seed: int = 7
    spec_path: Path | None = None


class FeastConfig(_Section):
    """Feature store backends; the repo's feature_store.yaml reads these through environment variables."""

    repo_path: Path | None = None
    data_dir: Path | None = None
    project: str = "creditops"
    online_store: Literal["sqlite", "redis"] = "sqlite"
    offline_store: Literal["file", "postgres"] = "file"
    redis_connection: str = "127.0.0.1:6379"
    postgres_host: str = "127.0.0.1"
    postgres_port: int = 5432
    postgres_database: str = "creditops"
    postgres_user: str = "postgres"
    postgres_password: str = ""
    postgres_sslmode: Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] = "require"

    def env(self, default_data_dir: Path) -> dict[str, str]:
        """The ``CREDITOPS_FEAST_*`` variables that ``feast_repo/feature_store.yaml`` is expanded with.

        Registry, SQLite online store and Parquet offline files live in ``data_dir`` (else the default).
        """
        data = Path(self.data_dir or default_data_dir).resolve()
        return {
            "CREDITOPS_FEAST_PROJECT": self.project,
            "CREDITOPS_FEAST_DATA_DIR": str(data),
            "CREDITOPS_FEAST_REGISTRY": str(data / "registry.db"),
            "CREDITOPS_FEAST_ONLINE_STORE": self.online_store,
            "CREDITOPS_FEAST_OFFLINE_STORE": self.offline_store,
            "CREDITOPS_FEAST_SQLITE_PATH": str(data / "online.db"),
            "CREDITOPS_FEAST_REDIS": self.redis_connection,
            "CREDITOPS_FEAST_PG_HOST": self.postgres_host,
            "CREDITOPS_FEAST_PG_PORT": str(self.postgres_port),
            "CREDITOPS_FEAST_PG_DATABASE": self.postgres_database,
            "CREDITOPS_FEAST_PG_USER": self.postgres_user,
            "CREDITOPS_FEAST_PG_PASSWORD": self.postgres_password,
            "CREDITOPS_FEAST_PG_SSLMODE": self.postgres_sslmode,
        }


class TrainingConfig(_Section):
    """Tuning and fitting."""

    n_trials: int = Field(100, ge=1)
    split: Literal["random", "out_of_time"] = "random"
    pruner: Literal["median", "hyperband"] = "median"
    cv_folds: int = Field(5, ge=2)
    seed: int = 7
    distributed: Literal["none", "dask"] = "none"
    dask_workers: int = Field(2, ge=1)


class GatesConfig(_Section):
    """Thresholds a model must meet before it may be registered for deployment.

    Fairness gates are statistical (see :mod:`creditops.governance.gates`): a disparity FAILS when it is
    significantly above its threshold (lower bound of its confidence interval > threshold), or when its point
    estimate is above the threshold and the estimate is precise (interval half-width <=
    ``fairness_precise_half_width``). A disparity above the threshold with a wide interval passes, flagged in
    the report's notes as inconclusive.

    Attributes:
        min_auc: test AUC-ROC must reach this.
        max_fpr: false-positive rate of the decline decision must stay at or under this.
        max_demographic_parity_difference: limit on the spread of decline rates between groups.
        max_equal_opportunity_difference: limit on the spread of true-positive rates between groups.
        max_perturbation_shift: limit on the mean |change in PD| under small input noise.
        perturbation_scale: size of that noise, in standard deviations of each input.
        fairness_min_group_size: rows a group needs to enter either disparity; smaller groups are listed
            as excluded.
        fairness_min_group_defaulters: defaulters a group needs to enter the equal opportunity difference.
        fairness_bootstrap_resamples: stratified bootstrap resamples per protected attribute.
        fairness_confidence: confidence level of the disparity intervals.
        fairness_precise_half_width: an interval at most this wide on each side counts as precise, so the
            point estimate alone decides (0 disables: only a significant excess fails).
        fairness_fail_unassessed: fail a disparity that cannot be measured (fewer than two groups with enough
            support) instead of passing it with a note.
    """

    min_auc: float = 0.80
    max_fpr: float = 0.05
    max_demographic_parity_difference: float = 0.10
    max_equal_opportunity_difference: float = 0.10
    max_perturbation_shift: float = 0.02
    perturbation_scale: float = 0.01
    fairness_min_group_size: int = Field(100, ge=1)
    fairness_min_group_defaulters: int = Field(30, ge=1)
    fairness_bootstrap_resamples: int = Field(200, ge=50)
    fairness_confidence: float = Field(0.95, gt=0.5, lt=1.0)
    fairness_precise_half_width: float = Field(0.05, ge=0.0)
    fairness_fail_unassessed: bool = False


class ScoringConfig(_Section):
    """Score scaling (points to double the odds) and decision thresholds on the probability of default."""

    base_score: float = 600.0
    base_odds: float = 50.0
    pdo: float = 20.0
    approve_below_pd: float | None = None
    decline_at_or_above_pd: float | None = None
    target_fpr: float = 0.04


class MlflowConfig(_Section):
    """Tracking server and registry."""

    tracking_uri: str = "sqlite:///{workdir}/mlflow.db"
    artifact_location: str = "{workdir}/mlartifacts"
    experiment: str = "creditops"
    model_name: str = "credit-pd"


class AuditConfig(_Section):
    """Append-only, hash-chained log of every prediction."""

    url: str = "sqlite:///{workdir}/audit.db"


class ServingConfig(_Section):
    """The local model server."""

    host: str = "127.0.0.1"
    port: int = 8080
    model_name: str = "credit-pd"
    max_batch_size: int = Field(1000, ge=1)


class RetrainingConfig(_Section):
    """When monitoring starts the retraining pipeline (:mod:`creditops.monitoring.trigger`)."""

    persist_windows: int = Field(2, ge=1)
    persistent_alerts: list[str] = ["FeatureDriftAct", "ScoreDrift", "CalibrationRed"]
    auc_floor: float = Field(0.78, gt=0.0, lt=1.0)
    min_auc_outcomes: int = Field(200, ge=1)
    schedule_days: float | None = Field(30.0, gt=0)
    cooldown_days: float = Field(7.0, ge=0)
    min_new_outcomes: int = Field(500, ge=0)
    auto_promote: bool = False


class MonitoringConfig(_Section):
    """Monitoring of served decisions (``creditops monitor``): windows, judges, alerts, /metrics."""

    window: str = "1D"
    min_window_rows: int = Field(200, ge=1)
    psi_warn: float = Field(0.10, gt=0)
    psi_act: float = Field(0.25, gt=0)
    psi_quantile: float = Field(0.95, gt=0.5, lt=1.0)
    ks_alpha: float = Field(0.05, gt=0.0, lt=1.0)
    mean_pd_tolerance: float = Field(0.25, gt=0.0)
    burst_min_identical: int = Field(20, ge=2)
    caller_min_rows: int = Field(50, ge=2)
    caller_z: float = Field(4.0, gt=0)
    bootstrap: int = Field(200, ge=0)
    min_outcomes: int = Field(200, ge=1)
    auc_floor: float = Field(0.78, gt=0.0, lt=1.0)
    air_floor: float = Field(0.80, gt=0.0, le=1.0)
    eo_gap: float = Field(0.10, gt=0.0, le=1.0)
    host: str = "127.0.0.1"
    port: int = Field(9108, ge=0, le=65535)
    webhook_url: str | None = None
    runbook_url: str = "docs/RUNBOOK.md#monitoring"
    retraining: RetrainingConfig = RetrainingConfig()


class Settings(_Section):
    """All of creditops' configuration."""

    workdir: Path = Path(".creditops")
    data: DataConfig = DataConfig()
    feast: FeastConfig = FeastConfig()
    training: TrainingConfig = TrainingConfig()
    gates: GatesConfig = GatesConfig()
    scoring: ScoringConfig = ScoringConfig()
    mlflow: MlflowConfig = MlflowConfig()
    audit: AuditConfig = AuditConfig()
    serving: ServingConfig = ServingConfig()
    monitoring: MonitoringConfig = MonitoringConfig()

    def resolved(self, base: Path | None = None) -> Settings:
        """Return a copy with an absolute workdir and ``{workdir}`` filled in, for subprocesses."""
        workdir = (base or Path.cwd()) / self.workdir if not self.workdir.is_absolute() else self.workdir
        workdir = workdir.resolve()
        data = self.model_dump()
        data["workdir"] = workdir
        data["mlflow"]["tracking_uri"] = self.mlflow.tracking_uri.replace("{workdir}", str(workdir))
        data["mlflow"]["artifact_location"] = self.mlflow.artifact_location.replace("{workdir}", str(workdir))
        data["audit"]["url"] = self.audit.url.replace("{workdir}", str(workdir))
        for key in ("repo_path", "data_dir"):
            value = getattr(self.feast, key)
            if value is not None and not value.is_absolute():
                data["feast"][key] = ((base or Path.cwd()) / value).resolve()
        if self.feast.data_dir is None:
            data["feast"]["data_dir"] = workdir / "feast"
        return Settings.model_validate(data)


def expand_vars(value: Any, environ: dict[str, str] | None = None) -> Any:
    """Expand ``${VAR}`` / ``${VAR:-default}`` in every string of a parsed YAML tree.

    Raises:
        ConfigError: a variable without a default is not set.
    """
    env = os.environ if environ is None else environ
    if isinstance(value, dict):
        return {k: expand_vars(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [expand_vars(v, env) for v in value]
    if isinstance(value, str):

        def _sub(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            raise ConfigError(f"config references ${{{name}}} but it is not set and has no default")

        return _VAR.sub(_sub, value)
    return value


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> Settings:
    """Read, expand and validate the configuration.

    Args:
        path: a YAML file; ``None`` means the embedded defaults.
        overrides: nested dict merged over the file (used by the CLI flags and tests).

    Raises:
        ConfigError: unreadable file, unknown key or invalid value (message names the field).
    """
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            raw = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read config {path}: {exc}") from exc
        if not isinstance(raw, dict):
            raise ConfigError(f"config {path} must be a mapping at the top level")
    raw = _merge(expand_vars(raw), overrides or {})
    try:
        return Settings.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"invalid config: {problems}") from exc


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out
