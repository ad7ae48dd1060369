"""The feature catalog: one entry per model feature, as text for the CLI and as HTML pages.

An entry joins the registry's definition (description, group, dtype, risk direction, adverse-action
reason, valid range), where it comes from (the Feast view, the source table and the computing function),
its content hash, statistics of the offline table, its drift status and the models that use it (from the
model registry; ``unknown`` when the registry cannot be read).
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

OWNER = "credit-risk-data"  # the team that owns the feature registry
_DIRECTION = {1: "higher value = higher risk", -1: "higher value = lower risk", 0: "no monotone constraint"}


@dataclass(frozen=True)
class CatalogEntry:
    """Everything the catalog shows about one feature."""

    name: str
    description: str
    group: str
    dtype: str
    view: str
    source: str
    function: str
    owner: str
    direction: int
    reason: str
    valid_range: tuple[float | None, float | None]
    content_hash: str
    statistics: dict[str, float]
    drift: str
    models: list[str] | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def feature_statistics(values: pd.Series) -> dict[str, float]:
    """Count, null rate, mean, std, min, median and max of one column."""
    col = pd.to_numeric(values, errors="coerce")
    present = col.dropna()
    stats = {"count": float(len(col)), "null_rate": float(col.isna().mean()) if len(col) else 1.0}
    if len(present):
        stats |= {
            "mean": float(present.mean()),
            "std": float(present.std(ddof=0)),
            "min": float(present.min()),
            "p50": float(present.median()),
            "max": float(present.max()),
        }
    return stats


def catalog_entries(
    tables: Mapping[str, pd.DataFrame] | None = None,
    drift: Mapping[str, bool] | None = None,
    models: Mapping[str, list[str]] | None = None,
) -> list[CatalogEntry]:
    """One entry per registry feature.

    Args:
        tables: offline feature tables by group (for statistics); ``None``: no statistics.
        drift: feature -> drifted (latest monitoring check); missing: ``not checked``.
        models: feature -> model versions using it; ``None``: the registry was not readable (``unknown``).
    """
    from creditops.features.build import feature_function
    from creditops.features.registry import FEATURES
    from creditops.features.versioning import feature_hashes

    hashes = feature_hashes([f.name for f in FEATURES])
    out = []
    for f in FEATURES:
        func = feature_function(f.name)
        table = (tables or {}).get(f.group)
        status = (
            "not checked"
            if drift is None or f.name not in drift
            else ("drifted" if drift[f.name] else "stable")
        )
        out.append(
            CatalogEntry(
                name=f.name,
                description=f.description,
                group=f.group,
                dtype=f.dtype,
                view=f"{f.group}_fv",
                source=f"{f.group}_source (table {f.group}_features)",
                function=f"{func.__module__}.{func.__qualname__}",
                owner=OWNER,
                direction=f.direction,
                reason=f.reason,
                valid_range=f.valid_range,
                content_hash=hashes[f.name],
                statistics=feature_statistics(table[f.name]) if table is not None and f.name in table else {},
                drift=status,
                models=None if models is None else sorted(models.get(f.name, [])),
            )
        )
    return out


def models_by_feature(manifests: Sequence[tuple[str, Sequence[str]]]) -> dict[str, list[str]]:
    """Feature -> model labels, from ``(label, features)`` pairs (e.g. ``credit-pd v3`` and its manifest)."""
    out: dict[str, list[str]] = {}
    for label, features in manifests:
        for f in features:
            out.setdefault(f, []).append(label)
    return out


def describe(entry: CatalogEntry) -> str:
    """Plain-text description (``creditops features describe``)."""
    low, high = entry.valid_range
    stats = ", ".join(f"{k} {v:.4g}" for k, v in entry.statistics.items()) or "not computed"
    lines = [
        f"{entry.name}: {entry.description}",
        f"  group/view     {entry.group} / {entry.view} ({entry.dtype})",
        f"  source         {entry.source}",
        f"  function       {entry.function}",
        f"  owner          {entry.owner}",
        f"  risk direction {entry.direction:+d} ({_DIRECTION[entry.direction]})",
        f"  reason         {entry.reason}",
        f"  valid range    [{'-inf' if low is None else low}, {'inf' if high is None else high}]",
        f"  content hash   {entry.content_hash}",
        f"  statistics     {stats}",
        f"  drift          {entry.drift}",
        f"  used by        {'unknown' if entry.models is None else ', '.join(entry.models) or 'no model'}",
    ]
    return "\n".join(lines)


def render_page(entry: CatalogEntry) -> str:
    """One feature's HTML page."""
    text = describe(entry).splitlines()
    rows = "".join(
        f"<tr><th>{html.escape(line[2:17].strip())}</th><td>{html.escape(line[17:].strip())}</td></tr>"
        for line in text[1:]
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(entry.name)}</title></head>"
        f"<body><h1>{html.escape(entry.name)}</h1><p>{html.escape(entry.description)}</p>"
        f"<table>{rows}</table><p><a href='index.html'>all features</a></p></body></html>\n"
    )


def write_catalog(entries: Sequence[CatalogEntry], out_dir: str | Path) -> list[Path]:
    """Write ``index.html`` and one ``<feature>.html`` per entry; return the paths written."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for entry in entries:
        path = out / f"{entry.name}.html"
        path.write_text(render_page(entry))
        paths.append(path)
    items = "".join(
        f"<tr><td><a href='{html.escape(e.name)}.html'>{html.escape(e.name)}</a></td><td>{e.group}</td>"
        f"<td>{e.direction:+d}</td><td>{html.escape(e.drift)}</td><td>{html.escape(e.description)}</td></tr>"
        for e in entries
    )
    index = out / "index.html"
    index.write_text(
        "<!doctype html><html><head><meta charset='utf-8'><title>creditops features</title></head><body>"
        "<h1>Feature catalog</h1><table><tr><th>feature</th><th>group</th><th>direction</th><th>drift</th>"
        f"<th>description</th></tr>{items}</table></body></html>\n"
    )
    return [index, *paths]
