"""MLflow model registry: register gated bundles, move aliases, resolve a reference to a local bundle.

Aliases, not stages: a new version enters as ``challenger``; only :func:`promote` moves ``champion`` (and
records who and when). The registered version's source is the run's ``bundle`` artifact directory, so what
serving downloads is byte-for-byte the directory that was validated (model.ubj, manifest.json,
reference.parquet). Beside those files the directory holds an ``MLmodel`` (a ``python_function`` flavour
whose loader is this module, with an input/output signature, no pickle), so it is also an MLflow model:
``mlflow.pyfunc.load_model("models:/credit-pd@challenger").predict(frame)`` returns PD, score points and
decision per row. Model card files are logged with ``.md`` / ``.html`` names, which the MLflow UI previews.

Every call talks to the tracking URI it is given through an :class:`mlflow.MlflowClient`; nothing touches the
process-wide MLflow tracking URI, so several registries can be used side by side (tests, staging vs prod).
"""

from __future__ import annotations

import getpass
import json
import math
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from mlflow import MlflowClient
from mlflow.entities import Metric, RunTag
from mlflow.exceptions import MlflowException

from creditops.artifact import (
    BUNDLE_FILES,
    MANIFEST_FILE,
    REGISTRATION_FILE,
    Bundle,
    load_bundle,
    read_manifest,
)
from creditops.errors import BundleError, GateFailure
from creditops.governance.gates import GateReport

CHALLENGER = "challenger"
CHAMPION = "champion"
BUNDLE_ARTIFACT_PATH = "bundle"
MODEL_CARD_ARTIFACT_PATH = "model_card"
GATE_REPORT_ARTIFACT = "gates/gate_report.json"
#: The module MLflow imports to load a registered bundle as a pyfunc model (its ``_load_pyfunc``).
PYFUNC_LOADER_MODULE = "creditops.governance.registry"

_MODEL_REF = re.compile(r"^(?:models:/)?(?P<name>[^@/]+)(?:@(?P<alias>[\w-]+)|/(?P<version>\d+))$")


def tracking_uri_for(uri: str) -> str:
    """Normalise a tracking URI: ``postgresql://`` / ``postgres://`` use the psycopg (v3) SQLAlchemy driver.

    SQLAlchemy's default Postgres driver is psycopg2, which creditops does not install.
    """
    for prefix in ("postgresql://", "postgres://"):
        if uri.startswith(prefix):
            return "postgresql+psycopg://" + uri[len(prefix) :]
    return uri


def default_artifact_location(tracking_uri: str) -> str | None:
    """Artifact root next to a SQLite tracking database (``<db dir>/mlartifacts``); None for servers/DBs.

    Without this MLflow would put artifacts under ``./mlruns`` relative to whatever the working directory is.
    """
    if tracking_uri.startswith("sqlite:///"):
        db = Path(tracking_uri[len("sqlite:///") :])
        return (db.parent / "mlartifacts").resolve().as_uri()
    return None


def _client(tracking_uri: str) -> MlflowClient:
    uri = tracking_uri_for(tracking_uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _experiment_id(client: MlflowClient, name: str, artifact_location: str | None) -> str:
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    try:
        return client.create_experiment(name, artifact_location=artifact_location)
    except MlflowException:
        # created concurrently by another process between the lookup and the create
        exp = client.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id


def _finite(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(float(x))


def _tag_value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


def register(
    bundle_dir: str | Path,
    gate_report: GateReport,
    tracking_uri: str,
    model_name: str,
    run_id: str | None = None,
    lineage: dict[str, Any] | None = None,
    model_card_paths: Iterable[str | Path] = (),
    *,
    experiment: str = "creditops",
    artifact_location: str | None = None,
) -> str:
    """Log a gated bundle to MLflow and register it as a new version with alias ``challenger``.

    Args:
        bundle_dir: the bundle directory (manifest.json, model.ubj, reference.parquet).
        gate_report: the gates' verdict on this bundle; registration is refused when it did not pass.
        tracking_uri: MLflow tracking/registry URI (``sqlite:///...``, ``postgresql://...``, ``http://...``).
        model_name: registered model name.
        run_id: log into this existing run (e.g. the training run); default: a new run in ``experiment``.
        lineage: data version -> feature service -> run -> model chain; keys such as ``data_version``,
            ``feature_service``, ``snapshot_dir``, ``pipeline_run``. Manifest values fill missing keys.
        model_card_paths: model card files (Markdown, HTML, images) logged under ``model_card/``.
        experiment: experiment for a new run.
        artifact_location: artifact root for a newly created experiment (e.g. ``s3://bucket/mlflow``);
            default: next to a SQLite database, else the server's default.

    Returns:
        The new model version (a string, e.g. ``"3"``).

    Raises:
        GateFailure: the gate report did not pass (message = the report's summary).
        BundleError: ``bundle_dir`` is not a bundle.
    """
    if not gate_report.passed:
        raise GateFailure(f"model {model_name!r} not registered: {gate_report.summary()}")
    bundle = Path(bundle_dir)
    missing = [name for name in BUNDLE_FILES if not (bundle / name).is_file()]
    if missing:
        raise BundleError(f"{bundle} is not a complete model bundle: missing {', '.join(missing)}")
    manifest = read_manifest(bundle)
    client = _client(tracking_uri)

    chain: dict[str, Any] = {
        "data_version": manifest.data_version,
        "feature_service": manifest.feature_service,
    }
    chain.update({k: v for k, v in (lineage or {}).items() if v is not None})
    if run_id is None:
        location = artifact_location or default_artifact_location(tracking_uri_for(tracking_uri))
        exp_id = _experiment_id(client, experiment, location)
        run = client.create_run(
            exp_id, run_name=f"register-{model_name}", tags={"creditops.step": "register"}
        )
        run_id = run.info.run_id
        owns_run = True
    else:
        owns_run = False
    chain["run_id"] = run_id

    try:
        with tempfile.TemporaryDirectory(prefix="creditops-register-") as tmp:
            model_dir = Path(tmp) / BUNDLE_ARTIFACT_PATH
            # a registered bundle given again carries its old version: the new one is written below
            shutil.copytree(bundle, model_dir, ignore=shutil.ignore_patterns(REGISTRATION_FILE))
            write_mlmodel(model_dir)
            client.log_artifacts(run_id, str(model_dir), BUNDLE_ARTIFACT_PATH)
            for card in model_card_paths:
                named = Path(tmp) / "cards" / card_file_name(card)
                named.parent.mkdir(exist_ok=True)
                shutil.copyfile(card, named)
                client.log_artifact(run_id, str(named), MODEL_CARD_ARTIFACT_PATH)
        client.log_dict(run_id, gate_report.to_dict(), GATE_REPORT_ARTIFACT)
        now = int(time.time() * 1000)
        metrics = [
            Metric(f"test.{k}", float(v), now, 0) for k, v in gate_report.metrics.items() if _finite(v)
        ]
        metrics += [Metric(f"gate.{g.name}", g.value, now, 0) for g in gate_report.gates if _finite(g.value)]
        tags = [RunTag(f"gate.{g.name}", g.status) for g in gate_report.gates]
        tags += [RunTag(f"lineage.{k}", _tag_value(v)) for k, v in chain.items() if v is not None]
        tags.append(RunTag("gates_passed", "true"))
        for start in range(0, len(metrics), 1000):  # MLflow caps a batch at 1000 metrics
            client.log_batch(run_id, metrics=metrics[start : start + 1000])
        client.log_batch(run_id, tags=tags)
    finally:
        if owns_run:
            client.set_terminated(run_id)

    try:
        client.create_registered_model(model_name, description="Probability-of-default model (creditops).")
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    version_tags = {f"lineage.{k}": _tag_value(v) for k, v in chain.items() if v is not None}
    version_tags["gates_passed"] = "true"
    mv = client.create_model_version(
        model_name,
        source=f"runs:/{run_id}/{BUNDLE_ARTIFACT_PATH}",
        run_id=run_id,
        tags=version_tags,
        description=gate_report.summary(),
    )
    version = str(mv.version)
    # the bundle's own record of it: a server given these files without the registry labels its decisions
    # "<name>@<version>" (a KServe storageUri pointing at this artefact)
    client.log_dict(
        run_id, {"model_name": model_name, "version": version}, f"{BUNDLE_ARTIFACT_PATH}/{REGISTRATION_FILE}"
    )
    arrow = " -> ".join(
        f"{k}:{chain[k]}" for k in ("data_version", "feature_service", "run_id") if chain.get(k) is not None
    )
    client.set_model_version_tag(model_name, version, "lineage", f"{arrow} -> model:{model_name}/{version}")
    client.set_tag(run_id, "lineage.model", f"{model_name}/{version}")
    client.set_registered_model_alias(model_name, CHALLENGER, version)
    return version


def card_file_name(path: str | Path) -> str:
    """The name a model card file is logged under (the MLflow UI previews ``.md`` / ``.html`` files).

    A file with a suffix keeps its name; KFP output artifacts have none, so they become ``model_card.html``
    or ``model_card.md`` by their content.
    """
    path = Path(path)
    if path.suffix:
        return path.name
    head = path.read_text(encoding="utf-8", errors="replace")[:512].lstrip().lower()
    return "model_card.html" if head.startswith(("<!doctype html", "<html")) else "model_card.md"


class PyfuncBundle:
    """A bundle as an MLflow ``python_function`` model: a frame of features in, a frame of decisions out."""

    def __init__(self, bundle: Bundle) -> None:
        self.bundle = bundle

    def predict(self, model_input: Any, params: dict[str, Any] | None = None) -> pd.DataFrame:
        """Columns ``pd`` (calibrated probability of default), ``score`` (points) and ``decision``."""
        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        pd_ = self.bundle.predict_pd(frame)
        return pd.DataFrame(
            {
                "pd": pd_,
                "score": self.bundle.score_points(pd_),
                "decision": pd.Series(self.bundle.decide(pd_), dtype=str),
            },
            index=frame.index,
        )


def _load_pyfunc(data_path: str) -> PyfuncBundle:
    """MLflow's pyfunc entry point (``loader_module``): load the bundle in ``data_path``."""
    return PyfuncBundle(load_bundle(data_path))


def write_mlmodel(bundle_dir: str | Path) -> Path:
    """Write an ``MLmodel`` (pyfunc flavour, signature from the manifest's features) into a bundle directory.

    Returns:
        The path of the ``MLmodel`` file.
    """
    from importlib import metadata

    from mlflow.models import Model, ModelSignature
    from mlflow.pyfunc import add_to_model
    from mlflow.types import ColSpec, Schema

    root = Path(bundle_dir)
    manifest = read_manifest(root)
    # The contract's dtypes: MLflow refuses int64 -> float64 as unsafe, so integer features are "long".
    inputs = Schema(
        [ColSpec("long" if manifest.dtypes.get(f) == "int" else "double", f) for f in manifest.features]
    )
    outputs = Schema([ColSpec("double", "pd"), ColSpec("double", "score"), ColSpec("string", "decision")])
    model = Model(signature=ModelSignature(inputs=inputs, outputs=outputs))
    try:
        version = metadata.version("creditops")
    except metadata.PackageNotFoundError:  # a source checkout without an installed distribution
        version = None
    (root / "requirements.txt").write_text(f"creditops=={version}\n" if version else "creditops\n")
    add_to_model(model, loader_module=PYFUNC_LOADER_MODULE, data=".")
    path = root / "MLmodel"
    model.save(str(path))
    return path


def alias_version(tracking_uri: str, model_name: str, alias: str) -> str | None:
    """The version an alias points to, or None when the alias (or the model) does not exist."""
    try:
        return str(_client(tracking_uri).get_model_version_by_alias(model_name, alias).version)
    except MlflowException:
        return None


def promote(
    tracking_uri: str,
    model_name: str,
    version: str | int,
    *,
    promoted_by: str | None = None,
    reason: str = "",
) -> str | None:
    """Point alias ``champion`` at ``version`` and record who promoted it, when, and what it replaced.

    Args:
        tracking_uri: MLflow tracking/registry URI.
        model_name: registered model name.
        version: the version to promote (must have passed the gates at registration).
        promoted_by: who promotes; default ``$CREDITOPS_ACTOR`` or the OS user.
        reason: free text kept with the promotion (e.g. the canary analysis verdict).

    Returns:
        The previous champion version (for rollback), or None when there was none.

    Raises:
        GateFailure: the version was not registered through the gates.
        BundleError: no such model version.
    """
    client = _client(tracking_uri)
    version = str(version)
    try:
        mv = client.get_model_version(model_name, version)
    except MlflowException as exc:
        raise BundleError(f"model {model_name!r} has no version {version}") from exc
    if mv.tags.get("gates_passed") != "true":
        raise GateFailure(f"model {model_name!r} version {version} was not registered through the gates")
    previous = alias_version(tracking_uri, model_name, CHAMPION)
    actor = promoted_by or os.environ.get("CREDITOPS_ACTOR") or getpass.getuser()
    when = datetime.now(UTC).isoformat(timespec="seconds")
    client.set_registered_model_alias(model_name, CHAMPION, version)
    client.set_model_version_tag(model_name, version, "champion.promoted_by", actor)
    client.set_model_version_tag(model_name, version, "champion.promoted_at", when)
    client.set_model_version_tag(model_name, version, "champion.previous", previous or "")
    if reason:
        client.set_model_version_tag(model_name, version, "champion.reason", reason)
    client.set_registered_model_tag(model_name, "champion.last_promotion", f"{version} by {actor} at {when}")
    return previous


def resolve_version(tracking_uri: str, ref: str) -> str | None:
    """The registered version number a model reference points to (None for a directory or unknown ref)."""
    match = _MODEL_REF.match(str(ref))
    if match is None or Path(ref).is_dir():
        return None
    if match.group("version"):
        return match.group("version")
    return alias_version(tracking_uri, match.group("name"), match.group("alias"))


def resolve(tracking_uri: str | None, ref: str | Path, dst_path: str | Path | None = None) -> Path:
    """Turn a model reference into a local bundle directory.

    Args:
        tracking_uri: MLflow tracking/registry URI (unused for a local directory).
        ref: ``models:/name@alias``, ``name@alias``, ``models:/name/3``, ``name/3`` or a local bundle
            directory (or a directory holding ``bundle/``).
        dst_path: where to download; default a new temporary directory.

    Returns:
        The directory holding manifest.json, model.ubj, reference.parquet.

    Raises:
        BundleError: the reference names no bundle (unknown model, alias or version; not a bundle).
    """
    local = Path(ref)
    if local.is_dir():
        for candidate in (local, local / BUNDLE_ARTIFACT_PATH):
            if (candidate / MANIFEST_FILE).is_file():
                return candidate
        raise BundleError(f"{local} is a directory but not a model bundle ({MANIFEST_FILE} missing)")
    match = _MODEL_REF.match(str(ref))
    if match is None:
        raise BundleError(
            f"{ref!r} is neither a bundle directory nor a model reference like models:/name@alias"
        )
    if tracking_uri is None:
        raise BundleError(f"resolving {ref!r} needs an MLflow tracking URI")
    client = _client(tracking_uri)
    name, alias, number = match.group("name"), match.group("alias"), match.group("version")
    try:
        mv = (
            client.get_model_version_by_alias(name, alias)
            if alias
            else client.get_model_version(name, number)
        )
    except MlflowException as exc:
        raise BundleError(f"no model version for {ref!r} in {tracking_uri}: {exc.message}") from exc
    dst = Path(dst_path) if dst_path is not None else Path(tempfile.mkdtemp(prefix="creditops-bundle-"))
    dst.mkdir(parents=True, exist_ok=True)
    source = str(mv.source)
    if source.startswith("runs:/"):
        run_id, _, path = source[len("runs:/") :].partition("/")
        out = Path(client.download_artifacts(run_id, path or BUNDLE_ARTIFACT_PATH, str(dst)))
    else:
        from mlflow.artifacts import download_artifacts

        out = Path(download_artifacts(artifact_uri=source, dst_path=str(dst)))
    if not (out / MANIFEST_FILE).is_file():
        raise BundleError(f"{ref!r} (source {source}) downloaded to {out} holds no {MANIFEST_FILE}")
    return out
