"""Typed configuration, parsed once at the edge.

One YAML file (or none: every field has an embedded default) is read by :func:`load_config`. ``${VAR}`` and
``${VAR:-default}`` are expanded from the environment before validation, so one file serves every environment
instead of a copy per environment. Unknown keys are errors (``extra="forbid"``).
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

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
    """Tuning and fitting.

    Attributes:
        objective: what a trial is scored by: ``valid`` (validation AUC), ``cv`` (mean k-fold AUC on
            train + valid) or ``auto`` (``cv`` below ``small_data_rows`` rows, where one small validation
            split is noise).
        small_data_rows: rows of train + valid below which ``auto`` cross-validates and the tuner searches
            its more strongly regularised small-data space.
        min_trees: no tuned model has fewer trees (early stopping cannot end below it).
        early_stopping_rounds: rounds without held-out improvement before a trial stops.
    """

    n_trials: int = Field(100, ge=1)
    split: Literal["random", "out_of_time"] = "random"
    pruner: Literal["median", "hyperband"] = "median"
    cv_folds: int = Field(5, ge=2)
    seed: int = 7
    distributed: Literal["none", "dask"] = "none"
    dask_workers: int = Field(2, ge=1)
    objective: Literal["auto", "valid", "cv"] = "auto"
    small_data_rows: int = Field(10_000, ge=0)
    min_trees: int = Field(50, ge=1)
    early_stopping_rounds: int = Field(30, ge=1)


class GatesConfig(_Section):
    """Thresholds a model must meet before it may be registered for deployment.

    The rules (which estimate each gate judges, what "not applicable" and "not assessed" mean) are in
    :mod:`creditops.governance.gates`. In short: the AUC gate judges the cross-validated AUC (and the test
    AUC, or on a small test set its lower confidence bound); FPR and recall are measured on the test set at
    the operating point set by :class:`ScoringConfig`; a fairness disparity fails when its point estimate
    is above its threshold (the bootstrap interval is reported beside it).

    Attributes:
        min_auc: AUC-ROC the model must reach (see the AUC rule in :mod:`creditops.governance.gates`).
        auc_small_test_class_size: a test set with fewer defaulters (or non-defaulters) than this is small:
            its AUC point estimate is not judged alone, but its lower confidence bound (or the CV estimate).
        auc_confidence: confidence level of the test AUC's DeLong interval.
        max_fpr: false-positive rate of the decline decision (non-defaulters declined) must stay at or under
            this, on the test set at the operating point.
        min_recall: share of the test set's defaulters that the decline decision catches must reach this.
        max_demographic_parity_difference: limit on the spread of decline rates between groups.
        max_equal_opportunity_difference: limit on the spread of true-positive rates between groups.
        min_adverse_impact_ratio: every group's approval rate over the most-approved group's must reach this
            (the four-fifths rule of US fair-lending reviews).
        max_perturbation_shift: limit on the mean |change in PD| under small input noise.
        perturbation_scale: size of that noise, in standard deviations of each input.
        baseline_tolerance: the tuned model's AUC may trail the best baseline's by at most this.
        champion_tolerance: retraining: the challenger's AUC on the recent hold-out may trail the current
            ``champion``'s AUC on the same rows by at most this (gate ``champion_not_worse``).
        max_calibration_auc_change: |AUC of the calibrated PD - AUC of the raw score| on the test set must
            stay at or under this (calibration must not destroy ranking through ties).
        fairness_min_group_size: rows a group needs to enter a disparity or the impact ratio; smaller groups
            are reported as not assessed.
        fairness_min_group_defaulters: defaulters a group needs to enter the equal opportunity difference
            (with fewer, its true-positive rate has a standard error above 0.05, and since the point estimate
            decides, the spread would be judged on noise).
        fairness_bootstrap_resamples: stratified bootstrap resamples per protected attribute.
        fairness_confidence: confidence level of the disparity intervals (reported, not used to pass).
        fairness_fail_unassessed: fail a disparity that cannot be measured (fewer than two groups with enough
            support) instead of letting it through as "not assessed".
    """

    min_auc: float = 0.80
    auc_small_test_class_size: int = Field(100, ge=1)
    auc_confidence: float = Field(0.95, gt=0.5, lt=1.0)
    max_fpr: float = Field(0.05, ge=0.0, le=1.0)
    min_recall: float = Field(0.20, ge=0.0, le=1.0)
    max_demographic_parity_difference: float = 0.10
    max_equal_opportunity_difference: float = 0.10
    min_adverse_impact_ratio: float = Field(0.80, ge=0.0, le=1.0)
    max_perturbation_shift: float = 0.02
    perturbation_scale: float = 0.01
    baseline_tolerance: float = Field(0.005, ge=0.0)
    champion_tolerance: float = Field(0.005, ge=0.0)
    max_calibration_auc_change: float = Field(0.002, ge=0.0)
    fairness_min_group_size: int = Field(100, ge=1)
    fairness_min_group_defaulters: int = Field(100, ge=1)
    fairness_bootstrap_resamples: int = Field(200, ge=50)
    fairness_confidence: float = Field(0.95, gt=0.5, lt=1.0)
    fairness_fail_unassessed: bool = False


class ScoringConfig(_Section):
    """Score scaling (points to double the odds) and the operating point: the decision policy.

    Three policies set the two PD thresholds (approve below one, decline at or above a higher one, refer the
    band in between to an underwriter); the two data-driven ones are chosen on the validation split, so the
    gates judge them on the untouched test set:

    * ``pd_cutoff``: ``approve_below_pd`` and ``decline_at_or_above_pd`` as given;
    * ``target_fpr``: decline at the lowest PD whose validation false-positive rate (share of non-defaulters
      declined) is at most ``target_fpr``;
    * ``approval_rate``: approve the ``target_approval_rate`` share of validation applicants with the
      lowest PD.

    With the last two the review band then holds ``review_share`` of validation applicants (below the
    decline threshold for ``target_fpr``, above the approval threshold for ``approval_rate``). Without
    ``policy``, it is ``pd_cutoff`` when both cut-offs are given, ``approval_rate`` when
    ``target_approval_rate`` is, else ``target_fpr``.

    Attributes:
        base_score: points at odds ``base_odds``.
        base_odds: good:bad odds of ``base_score``.
        pdo: points to double the odds.
        policy: ``pd_cutoff``, ``target_fpr`` or ``approval_rate`` (see above).
        approve_below_pd: ``pd_cutoff``: approve below this PD.
        decline_at_or_above_pd: ``pd_cutoff``: decline at or above this PD (>= ``approve_below_pd``).
        target_fpr: ``target_fpr``: largest validation FPR of the decline decision.
        target_approval_rate: ``approval_rate``: share of validation applicants approved outright.
        review_share: share of validation applicants referred to review (0: no review band).
    """

    base_score: float = 600.0
    base_odds: float = 50.0
    pdo: float = 20.0
    policy: Literal["pd_cutoff", "target_fpr", "approval_rate"] | None = None
    approve_below_pd: float | None = Field(None, ge=0.0, le=1.0)
    decline_at_or_above_pd: float | None = Field(None, ge=0.0, le=1.0)
    target_fpr: float = Field(0.03, gt=0.0, lt=1.0)
    target_approval_rate: float | None = Field(None, gt=0.0, lt=1.0)
    review_share: float = Field(0.10, ge=0.0, lt=1.0)

    @model_validator(mode="after")
    def _policy(self) -> ScoringConfig:
        cutoffs = (self.approve_below_pd, self.decline_at_or_above_pd)
        if self.policy is None:
            if all(c is not None for c in cutoffs):
                self.policy = "pd_cutoff"
            elif self.target_approval_rate is not None:
                self.policy = "approval_rate"
            else:
                self.policy = "target_fpr"
        if self.policy == "pd_cutoff":
            if any(c is None for c in cutoffs):
                raise ValueError("policy pd_cutoff needs both approve_below_pd and decline_at_or_above_pd")
            if self.approve_below_pd > self.decline_at_or_above_pd:  # type: ignore[operator]
                raise ValueError(
                    f"approve_below_pd ({self.approve_below_pd}) must not exceed decline_at_or_above_pd "
                    f"({self.decline_at_or_above_pd})"
                )
        elif any(c is not None for c in cutoffs):
            raise ValueError(
                "approve_below_pd / decline_at_or_above_pd are only used by policy pd_cutoff, "
                f"not {self.policy}"
            )
        if self.policy == "approval_rate":
            if self.target_approval_rate is None:
                raise ValueError("policy approval_rate needs target_approval_rate")
            if self.target_approval_rate + self.review_share >= 1.0:
                raise ValueError(
                    f"target_approval_rate ({self.target_approval_rate}) + review_share "
                    f"({self.review_share}) must stay below 1 (someone must be declinable)"
                )
        return self


class MlflowConfig(_Section):
    """Tracking server and registry."""

    tracking_uri: str = "sqlite:///{workdir}/mlflow.db"
    artifact_location: str = "{workdir}/mlartifacts"
    experiment: str = "creditops"
    model_name: str = "credit-pd"


class AuditConfig(_Section):
    """Append-only, hash-chained log of every prediction.

    Attributes:
        url: ``sqlite:///path`` or ``postgresql://...``.
        anchor_path: append-only file, outside the database, where every writer checkpoints its chain head
            after each commit; ``creditops audit verify`` checks the database against it, so a database
            writer cannot rewrite, truncate or drop a chain unnoticed. Put it on storage the database's
            writers cannot modify. ``None`` disables the anchor (verification then proves only consistency).
    """

    url: str = "sqlite:///{workdir}/audit.db"
    anchor_path: str | None = "{workdir}/audit.anchor"


class AuthConfig(_Section):
    """How the model server verifies its callers (:mod:`creditops.security`).

    Attributes:
        mode: ``anonymous`` (every caller is recorded as ``anonymous``: local use only, named on purpose),
            ``api_key`` or ``jwt``.
        api_key_hashes_file: ``<caller id> <sha256 hex of the key>`` lines (digests only, never keys).
        jwt_key_file: HMAC secret or PEM public key verifying JWTs (a mounted secret, never in the repo).
        jwt_algorithms: accepted JWT signature algorithms.
        jwt_audience: required ``aud`` claim, if any.
        jwt_issuer: required ``iss`` claim, if any.
    """

    mode: Literal["anonymous", "api_key", "jwt"] = "anonymous"
    api_key_hashes_file: Path | None = None
    jwt_key_file: Path | None = None
    jwt_algorithms: list[str] = ["RS256"]
    jwt_audience: str | None = None
    jwt_issuer: str | None = None


class ServingConfig(_Section):
    """The local model server.

    Attributes:
        host: interface the server binds (loopback by default).
        port: HTTP port.
        model_name: name on the endpoint paths.
        max_batch_size: most rows per request.
        workers: server processes sharing the port (each writes its own audit chain).
        auth: caller authentication.
        repository_api: expose KServe's model-repository load/unload endpoints (to authenticated callers
            only; refused with ``auth.mode: anonymous``). Off by default: an unload takes scoring down.
    """

    host: str = "127.0.0.1"
    port: int = 8080
    model_name: str = "credit-pd"
    max_batch_size: int = Field(1000, ge=1)
    workers: int = Field(1, ge=1)
    auth: AuthConfig = AuthConfig()
    repository_api: bool = False


class StreamingConfig(_Section):
    """The event stream (NATS JetStream) and the consumer's state.

    Attributes:
        broker: the broker implementation (NATS JetStream is the one implemented).
        url: broker URL.
        stream: stream name: events on ``<stream>.events.<kind>``, dead letters in ``<stream>_dlq``.
        durable: the consumer's durable name (consumers sharing it share the work).
        batch_size: the most events fetched and processed together: a backlog's batch (live traffic comes
            in the few events that arrived meanwhile). Per event, 4,000 cost 99 us against 117 at 1,000
            (interleaved batches on the streaming bench's world).
        ack_wait_seconds: an unacknowledged batch is redelivered after this long.
        state_redis_url: Redis holding the per-applicant event state.
        state_prefix: key prefix of that state.
        offline_flush_events: processed events whose offline write (and acknowledgement) may wait to be
            done together; the online write of every batch is immediate.
        offline_flush_seconds: the longest a processed batch waits for its offline write (below
            ``ack_wait_seconds``, or it is redelivered meanwhile).
    """

    broker: Literal["nats"] = "nats"
    url: str = "nats://127.0.0.1:4222"
    stream: str = "creditops"
    durable: str = "features"
    batch_size: int = Field(4000, ge=1, le=100_000)
    ack_wait_seconds: float = Field(30.0, gt=0)
    state_redis_url: str = "redis://127.0.0.1:6379/0"
    state_prefix: str = "creditops:stream:"
    offline_flush_events: int = Field(10_000, ge=1)
    offline_flush_seconds: float = Field(1.0, ge=0)

    @model_validator(mode="after")
    def _flush_before_redelivery(self) -> StreamingConfig:
        # a batch held past ack_wait is redelivered while the first delivery is still being written
        if self.offline_flush_seconds >= self.ack_wait_seconds / 2:
            raise ValueError(
                f"offline_flush_seconds ({self.offline_flush_seconds}) must be below half of "
                f"ack_wait_seconds ({self.ack_wait_seconds})"
            )
        return self


class ScheduleConfig(_Section):
    """When the pipelines run: 5-field cron expressions (minute hour day-of-month month day-of-week, UTC).

    ``creditops schedule`` and the KFP recurring runs in ``manifests/`` read the same expressions (KFP's
    ``cronSchedule`` takes a leading seconds field: ``"0 " + daily_cron``).

    Attributes:
        daily_cron: the daily data pipeline (ingest -> features -> store -> monitoring -> retrain decision).
        retrain_cron: the monthly retraining pipeline; 03:00 on the 1st, after that day's data run.
        max_concurrency: runs at once, all pipelines together (a due run waits for the running one).
    """

    daily_cron: str = "0 2 * * *"
    retrain_cron: str = "0 3 1 * *"
    max_concurrency: int = Field(1, ge=1)


class CanaryConfig(_Section):
    """Canary steps and analysis, with the semantics Flagger users know.

    ``interval_s`` is the time spent on each traffic step; the judges run every ``check_every_s`` on the
    step's traffic so far, and ``threshold`` failed checks roll back. ``threshold * check_every_s`` must fit
    in one interval, so a breach rolls back within one analysis interval. A rollout that has not advanced a
    step for ``progress_deadline_s`` (e.g. too little traffic to judge, a canary that never gets ready) is
    rolled back.

    As in Flagger, the analysis ends at the last step (``maxWeight``, 50 % by default) and the canary is then
    promoted: only up to there does the champion serve traffic at the same time, so the judges compare the
    two arms on concurrent traffic. A step of 100 % is allowed, but its canary is judged against the
    champion's traffic from earlier in the rollout (other time, other load per server).

    ``alpha`` is the chance that a statistical judge (latency, score PSI, approval and decline shift) fails
    a challenger no different from the champion anywhere in the rollout. The judges look again at every
    check on cumulative windows, so each look tests at :attr:`look_alpha`, ``alpha`` split evenly over the
    planned looks (Bonferroni). Testing every look at ``alpha`` itself rolled back 4 % of equal challengers
    (10 % of ones 1.4 points of decline rate off) over 12 looks instead of the 1 % asked for.
    """

    steps: list[int] = Field(default_factory=lambda: [10, 25, 50], min_length=1)
    interval_s: float = Field(30.0, gt=0)
    check_every_s: float = Field(5.0, gt=0)
    threshold: int = Field(2, ge=1)
    progress_deadline_s: float = Field(600.0, gt=0)
    max_error_rate: float = Field(0.01, ge=0, le=1)
    max_latency_ratio: float = Field(1.5, gt=1)
    psi_threshold: float = Field(0.1, gt=0)
    max_approval_shift: float = Field(0.05, gt=0, le=1)
    alpha: float = Field(0.01, gt=0, lt=1)
    min_requests: int = Field(20, ge=1)
    # a rank test separates a 10x slower canary on 10 calls (p ~ 1e-5 against a busy champion); waiting
    # for more would let a slow canary outlive one interval at a 10 % step
    min_latency_samples: int = Field(10, ge=3)

    @model_validator(mode="after")
    def _check(self) -> CanaryConfig:
        if any(not 0 < w <= 100 for w in self.steps) or self.steps != sorted(set(self.steps)):
            raise ValueError(f"canary.steps must rise strictly within 1..100, got {self.steps}")
        if self.threshold * self.check_every_s > self.interval_s:
            raise ValueError(
                f"canary.threshold * check_every_s ({self.threshold} * {self.check_every_s}) must be <= "
                f"interval_s ({self.interval_s}) so a breach rolls back within one interval"
            )
        return self

    @property
    def planned_looks(self) -> int:
        """Checks a rollout that passes makes: ``ceil(interval_s / check_every_s)`` on each step."""
        return len(self.steps) * math.ceil(self.interval_s / self.check_every_s - 1e-9)

    @property
    def look_alpha(self) -> float:
        """The significance level of one judge at one check: ``alpha / planned_looks``."""
        return self.alpha / self.planned_looks


class DeployConfig(_Section):
    """Environments, rollout strategy, approval and the deployment history."""

    target: Literal["local", "kubernetes"] = "local"
    strategy: Literal["canary", "shadow", "ab"] = "canary"
    canary: CanaryConfig = CanaryConfig()
    auto_promote: bool = False
    history_url: str = "sqlite:///{workdir}/deployments.db"
    router_host: str = "127.0.0.1"
    router_port: int = Field(8090, ge=0, le=65535)
    ab_split: int = Field(50, ge=1, le=99)
    namespace: str = "creditops"
    inference_service: str = "credit-pd"
    kserve_mode: Literal["Knative", "Standard"] = "Knative"


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
    streaming: StreamingConfig = StreamingConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    deploy: DeployConfig = DeployConfig()
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
        if self.audit.anchor_path is not None:
            data["audit"]["anchor_path"] = self.audit.anchor_path.replace("{workdir}", str(workdir))
        data["deploy"]["history_url"] = self.deploy.history_url.replace("{workdir}", str(workdir))
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
