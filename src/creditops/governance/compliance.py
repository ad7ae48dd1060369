"""The compliance report: one static HTML file a model-risk or compliance reviewer can read without access.

Every figure is recomputed from the systems of record, never copied from a summary:

* **model inventory** (SR 11-7): purpose, owner, every registered version with its aliases, validation
  status, lineage, who promoted it and why it was retrained (MLflow registry);
* **gate history**: every candidate the training and retraining pipelines judged, passed or refused (MLflow
  runs tagged ``gates_passed``), with the gates that failed;
* **deployments and approvals**, and the **retraining decisions** of the trigger policy (deployment history);
* **adverse-action coverage**: every decline must carry at least one principal reason (audit log);
* **audit coverage**: records per version, duplicated prediction ids, every hash chain recomputed;
* **drift, back-test and fairness history**: per monitoring window (a :class:`MonitoringRun`).

:func:`gather` collects the facts, :func:`render_compliance` writes them; :attr:`ComplianceFacts.findings`
lists what a reviewer must act on (a decline without reasons, a broken chain, a champion without a
recorded approval, a failed calibration back-test...), so a check can fail the report's caller.
"""

from __future__ import annotations

import html
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from creditops.config import Settings

PURPOSE = (
    "Probability of default of consumer credit applications, used to approve, refer or decline them; every "
    "decline carries its principal reasons (adverse-action notice, ECOA / Reg B)."
)


@dataclass
class ComplianceFacts:
    """What the report shows, gathered from the registry, the deployment history and the audit log."""

    model_name: str
    owner: str
    purpose: str
    generated_at: str
    inventory: list[dict[str, Any]] = field(default_factory=list)
    gate_history: list[dict[str, Any]] = field(default_factory=list)
    deployments: list[dict[str, Any]] = field(default_factory=list)
    retraining: list[dict[str, Any]] = field(default_factory=list)
    adverse_action: list[dict[str, Any]] = field(default_factory=list)
    audit: dict[str, Any] = field(default_factory=dict)
    windows: list[dict[str, Any]] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)


def _ms(ts: Any) -> str:
    return datetime.fromtimestamp(int(ts) / 1000, UTC).strftime("%Y-%m-%d %H:%M:%SZ") if ts else ""


def registry_facts(tracking_uri: str, model_name: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The model inventory (registered versions) and the gate history (every judged candidate run)."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    from creditops.governance.registry import tracking_uri_for

    uri = tracking_uri_for(tracking_uri)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    try:
        model = client.get_registered_model(model_name)
    except MlflowException:
        return [], []
    aliases: dict[str, list[str]] = {}
    for alias, version in model.aliases.items():
        aliases.setdefault(str(version), []).append(alias)
    inventory = []
    for mv in sorted(client.search_model_versions(f"name='{model_name}'"), key=lambda v: int(v.version)):
        t = mv.tags
        inventory.append({
            "version": str(mv.version), "registered": _ms(mv.creation_timestamp),
            "aliases": sorted(aliases.get(str(mv.version), [])),
            "validation": "gates passed" if t.get("gates_passed") == "true" else "NOT VALIDATED",
            "data_version": t.get("lineage.data_version", ""), "run_id": mv.run_id or "",
            "promoted_by": t.get("champion.promoted_by", ""),
            "promoted_at": t.get("champion.promoted_at", ""),
            "retraining_reason": t.get("retraining.reason", ""), "summary": (mv.description or "")[:200],
        })  # fmt: skip
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(experiments, "tags.gates_passed != ''", max_results=1000) if experiments else []
    gates = []
    for r in sorted(runs, key=lambda r: r.info.start_time or 0):
        t, m = r.data.tags, r.data.metrics
        failed = t.get("gates_failed", "") or ", ".join(
            k[len("gate.") :] for k, v in t.items() if k.startswith("gate.") and v == "fail"
        )
        gates.append({
            "run_id": r.info.run_id, "started": _ms(r.info.start_time),
            "passed": t.get("gates_passed") == "true",
            "failed_gates": failed, "version": t.get("lineage.model", ""),
            "test_auc": m.get("test.auc"), "retraining_reason": t.get("retraining.reason", ""),
        })  # fmt: skip
    return inventory, gates


def audit_facts(audit_url: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Audit coverage (records, chains recomputed, duplicates) and adverse-action coverage per version."""
    from creditops.governance.audit import AuditLog
    from creditops.monitoring.source import read_audit_decisions

    with AuditLog.open(audit_url) as log:
        report = log.verify()
    d = read_audit_decisions(audit_url, [])
    ids = Counter(p for p in d.prediction_id.tolist() if p)
    audit = {
        "records": report.n_records, "chains": report.n_chains, "chains_ok": report.ok,
        "problem": report.reason, "anchored": report.anchored,
        "per_version": dict(Counter(d.model_version.tolist())),
        "duplicate_prediction_ids": sum(1 for n in ids.values() if n > 1), "decisions_read": len(d),
    }  # fmt: skip
    adverse = []
    for version in d.versions():
        mine = d.model_version == version
        declines = mine & (d.decision == "decline")
        with_reason = declines & (d.reason != "")
        n = int(declines.sum())
        adverse.append({
            "version": version, "decisions": int(mine.sum()), "declines": n,
            "with_reasons": int(with_reason.sum()),
            "coverage": float(with_reason.sum() / n) if n else 1.0,
            "missing_examples": d.prediction_id[declines & ~with_reason][:5].tolist(),
        })  # fmt: skip
    return audit, adverse


def window_facts(run: Any) -> list[dict[str, Any]]:
    """Drift, back-test and fairness per monitoring window."""
    rows = []
    for w in run.windows:
        perf = w.performance or {}
        lights = Counter(str(c.get("light", "")) for c in (w.calibration or []))
        air = [
            (f"{g['attribute']}={g['group']}", float(g["air"]))
            for g in (w.fairness or [])
            if g.get("air") is not None and g["air"] == g["air"]
        ]
        worst = min(air, key=lambda kv: kv[1]) if air else None
        rows.append({
            "version": w.model_version, "start": w.start, "n": w.n, "score_psi": w.score_psi,
            "score_critical": w.score_critical, "drifted": w.drifted(), "approval_rate": w.approval_rate,
            "auc": perf.get("auc"), "auc_low": perf.get("auc_lo"), "auc_high": perf.get("auc_hi"),
            "matured": perf.get("matured", 0), "calibration_red": lights.get("red", 0),
            "calibration_amber": lights.get("amber", 0),
            "worst_air": None if worst is None else {"group": worst[0], "ratio": worst[1]},
        })  # fmt: skip
    return rows


def gather(
    settings: Settings, run: Any = None, *, owner: str = "", purpose: str = PURPOSE
) -> ComplianceFacts:
    """Collect every fact of the report, and the findings a reviewer must act on."""
    from creditops.deploy.commands import history_of

    name = settings.mlflow.model_name
    facts = ComplianceFacts(
        name, owner or "unassigned", purpose, datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    )
    facts.inventory, facts.gate_history = registry_facts(settings.mlflow.tracking_uri, name)
    events = history_of(settings).events(model_name=name)
    keep = ("ts", "environment", "version", "event", "serving", "actor", "reason")
    facts.deployments = [{k: getattr(e, k) for k in keep} for e in events if e.environment != "training"]
    facts.retraining = [{k: getattr(e, k) for k in keep} for e in events if e.environment == "training"]
    facts.audit, facts.adverse_action = audit_facts(settings.audit.url)
    facts.windows = window_facts(run) if run is not None else []
    facts.findings = findings(facts, settings)
    return facts


def findings(facts: ComplianceFacts, settings: Settings) -> list[str]:
    """What is out of policy, one line each (empty: nothing to act on)."""
    out = []
    if not facts.audit.get("chains_ok", True):
        out.append(f"audit log: hash chain broken ({facts.audit.get('problem')})")
    if facts.audit.get("duplicate_prediction_ids"):
        out.append(
            f"audit log: {facts.audit['duplicate_prediction_ids']} prediction ids recorded more than once"
        )
    for a in facts.adverse_action:
        if a["declines"] and a["with_reasons"] < a["declines"]:
            examples = ", ".join(map(str, a["missing_examples"]))
            out.append(
                f"adverse action: {a['declines'] - a['with_reasons']} of {a['declines']} declines of "
                f"{a['version']} carry no principal reason (e.g. {examples})"
            )
    approved = {d["version"] for d in facts.deployments if d["event"] == "approved"}
    auto = settings.deploy.auto_promote
    for v in facts.inventory:
        if v["validation"] != "gates passed":
            out.append(f"inventory: v{v['version']} is registered without passing its gates")
        if "champion" in v["aliases"] and v["version"] not in approved and not auto:
            promoted = [
                d for d in facts.deployments if d["event"] == "promoted" and d["version"] == v["version"]
            ]
            how = f"promoted by {promoted[-1]['actor']}" if promoted else "no promotion recorded"
            out.append(f"inventory: champion v{v['version']} has no recorded approval ({how})")
    for w in facts.windows:
        if w["calibration_red"]:
            out.append(
                f"back-test: {w['version']} window {w['start'][:16]}: {w['calibration_red']} grade(s) red"
            )
        if w["auc"] is not None and w["auc"] < settings.monitoring.auc_floor and w["matured"]:
            out.append(
                f"performance: {w['version']} window {w['start'][:16]}: AUC {w['auc']:.3f} below floor"
            )
        if w["worst_air"] and w["worst_air"]["ratio"] < settings.monitoring.air_floor:
            g = w["worst_air"]
            out.append(
                f"fairness: {w['version']} window {w['start'][:16]}: {g['group']} AIR {g['ratio']:.2f}"
            )
    return out


# --------------------------------------------------------------------------------------------------------
# HTML


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list | tuple):
        return html.escape(", ".join(map(str, value))) or "-"
    return html.escape(str(value)) or "-"


def _table(rows: list[dict[str, Any]], columns: list[str], empty: str) -> str:
    if not rows:
        return f"<p><em>{html.escape(empty)}</em></p>"
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{_cell(r.get(c))}</td>" for c in columns) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def render_compliance(facts: ComplianceFacts, path: str | Path) -> Path:
    """Write the report; returns its path."""
    a = facts.audit
    verdict = (
        "<p class='ok'>No findings.</p>"
        if not facts.findings
        else "<ul class='bad'>" + "".join(f"<li>{html.escape(f)}</li>" for f in facts.findings) + "</ul>"
    )
    windows = [
        {
            **w,
            "worst_air": f"{w['worst_air']['group']} {w['worst_air']['ratio']:.2f}"
            if w["worst_air"]
            else None,
        }
        for w in facts.windows
    ]
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>compliance report: {html.escape(facts.model_name)}</title>",
        "<style>body{font-family:sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:2px 6px;font-size:13px}.bad{color:#b00}.ok{color:#070}</style>",
        "</head><body>",
        f"<h1>Compliance report: {html.escape(facts.model_name)}</h1>",
        f"<p>Generated {facts.generated_at}. Owner: <b>{html.escape(facts.owner)}</b>.</p>",
        f"<p>Purpose: {html.escape(facts.purpose)}</p>",
        f"<h2>Findings ({len(facts.findings)})</h2>{verdict}",
        "<h2>Model inventory (SR 11-7)</h2>",
        _table(facts.inventory, ["version", "registered", "aliases", "validation", "data_version",
                                 "promoted_by", "promoted_at", "retraining_reason", "summary"],
               "no registered versions"),
        "<h2>Gate history: every candidate judged</h2>",
        _table(facts.gate_history, ["started", "run_id", "passed", "failed_gates", "version", "test_auc",
                                    "retraining_reason"], "no judged candidates"),
        "<h2>Deployments and approvals</h2>",
        _table(facts.deployments, ["ts", "environment", "version", "event", "serving", "actor", "reason"],
               "no deployment events"),
        "<h2>Retraining decisions</h2>",
        _table(facts.retraining, ["ts", "version", "event", "actor", "reason"], "no retraining decisions"),
        "<h2>Adverse-action coverage (every decline carries its principal reasons)</h2>",
        _table(facts.adverse_action, ["version", "decisions", "declines", "with_reasons", "coverage",
                                      "missing_examples"], "no audited decisions"),
        "<h2>Audit coverage</h2>",
        f"<p>{a.get('records', 0):,} records in {a.get('chains', 0)} hash chains; every chain recomputed: "
        f"<b class='{'ok' if a.get('chains_ok') else 'bad'}'>{'intact' if a.get('chains_ok') else 'BROKEN'}"
        f"</b>{'' if a.get('chains_ok') else ' (' + html.escape(str(a.get('problem'))) + ')'}; anchored: "
        f"{a.get('anchored')}; prediction ids recorded twice: {a.get('duplicate_prediction_ids', 0)}; "
        f"decisions read back: {a.get('decisions_read', 0):,}.</p>",
        _table([{"version": k, "records": v} for k, v in a.get("per_version", {}).items()],
               ["version", "records"], "no records"),
        "<h2>Drift, back-test and fairness history (per monitoring window)</h2>",
        _table(windows, ["version", "start", "n", "score_psi", "score_critical", "drifted", "approval_rate",
                         "auc", "auc_low", "auc_high", "matured", "calibration_red", "calibration_amber",
                         "worst_air"], "no monitoring windows"),
        "</body></html>",
    ]  # fmt: skip
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(parts))
    return out
