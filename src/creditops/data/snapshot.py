"""Immutable, content-addressed data snapshots with lineage.

A snapshot is a directory ``<out_dir>/<version>/`` holding ``<table>.parquet`` per table and
``snapshot.json`` ``{version, source, schema, row_counts, lineage, created_at}``. The version is the first
16 hex digits of a sha256 over the canonical JSON of the schema (ordered columns and dtypes) and the
source description, and over one digest per table of ``pandas.util.hash_pandas_object`` row hashes
(fast, vectorised). ``created_at`` is not hashed, so the same data, schema and source always give the same
version, and an existing version directory is never rewritten.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import creditops
from creditops.errors import DataError

MANIFEST = "snapshot.json"


@dataclass(frozen=True)
class SnapshotInfo:
    """What a snapshot holds and where it came from.

    Attributes:
        version: Content hash (16 hex digits) of data + schema + source.
        path: The snapshot directory (named by ``version``).
        source: Caller's description of the origin (kind, seed, spec, parent versions, ...).
        schema: Table → ordered ``[column, dtype]`` pairs.
        row_counts: Table → number of rows.
        lineage: Per-table digests, parent versions, producing library versions.
        created_at: ISO-8601 UTC time the snapshot was first written (not part of the version).
    """

    version: str
    path: Path
    source: dict[str, Any]
    schema: dict[str, list[list[str]]]
    row_counts: dict[str, int]
    lineage: dict[str, Any]
    created_at: str

    def to_json(self) -> str:
        """The ``snapshot.json`` document (without ``path``)."""
        doc = asdict(self)
        doc.pop("path")
        return json.dumps(doc, indent=2, sort_keys=True, default=str)


def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str).encode("utf-8")


def _schema(tables: dict[str, pd.DataFrame]) -> dict[str, list[list[str]]]:
    return {name: [[str(c), str(t)] for c, t in df.dtypes.items()] for name, df in sorted(tables.items())}


def _table_digest(df: pd.DataFrame) -> str:
    rows = pd.util.hash_pandas_object(df, index=False).to_numpy(dtype=np.uint64)
    return hashlib.sha256(rows.tobytes()).hexdigest()


def content_version(tables: dict[str, pd.DataFrame], source: dict[str, Any]) -> tuple[str, dict[str, str]]:
    """Compute the snapshot version and the per-table digests it is built from.

    Args:
        tables: Table name → frame.
        source: Description of the origin (must be JSON-serialisable; other values are hashed as ``str``).

    Returns:
        ``(version, {table: sha256 of its row hashes})``.
    """
    digests = {name: _table_digest(df) for name, df in sorted(tables.items())}
    h = hashlib.sha256()
    h.update(_canonical({"schema": _schema(tables), "source": source}))
    for name, digest in digests.items():
        h.update(name.encode("utf-8") + b"\0" + bytes.fromhex(digest))
    return h.hexdigest()[:16], digests


def _info_from_json(path: Path) -> SnapshotInfo:
    manifest = path / MANIFEST
    try:
        doc = json.loads(manifest.read_text(encoding="utf-8"))
        return SnapshotInfo(path=path, **doc)
    except FileNotFoundError:
        raise DataError(f"{manifest}: snapshot manifest not found") from None
    except (OSError, ValueError, TypeError) as exc:
        raise DataError(f"{manifest}: corrupt snapshot manifest: {exc}") from None


def write_snapshot(
    tables: dict[str, pd.DataFrame], out_dir: str | Path, source: dict[str, Any]
) -> SnapshotInfo:
    """Write tables as an immutable snapshot ``<out_dir>/<version>/`` (or return the existing one).

    Args:
        tables: Table name → frame (names become ``<name>.parquet``).
        out_dir: Folder that holds snapshot directories.
        source: Description of the origin; ``source["parents"]`` (list of versions), if present, is
            recorded as lineage.

    Returns:
        The snapshot's info; if that version already exists it is returned untouched.
    """
    if not tables:
        raise ValueError("a snapshot needs at least one table")
    version, digests = content_version(tables, source)
    root = Path(out_dir)
    target = root / version
    if (target / MANIFEST).is_file():
        return _info_from_json(target)
    root.mkdir(parents=True, exist_ok=True)
    info = SnapshotInfo(
        version=version,
        path=target,
        source=json.loads(_canonical(source)),
        schema=_schema(tables),
        row_counts={name: len(df) for name, df in sorted(tables.items())},
        lineage={
            "parents": list(source.get("parents", [])),
            "tables": {name: {"rows": len(tables[name]), "sha256": d} for name, d in digests.items()},
            "hash": "sha256(canonical JSON of schema+source; per table: name + sha256 of row hashes)[:16]",
            "produced_by": {
                "creditops": creditops.__version__,
                "pandas": pd.__version__,
                "numpy": np.__version__,
                "python": platform.python_version(),
            },
        },
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    tmp = root / f".tmp-{version}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        for name, df in tables.items():
            df.to_parquet(tmp / f"{name}.parquet", index=False)
        (tmp / MANIFEST).write_text(info.to_json(), encoding="utf-8")
        os.rename(tmp, target)  # atomic: readers never see a half-written version
    except OSError:
        if (target / MANIFEST).is_file():  # another writer won the race with identical content
            return _info_from_json(target)
        raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return info


def read_snapshot(path: str | Path, verify: bool = True) -> tuple[dict[str, pd.DataFrame], SnapshotInfo]:
    """Read a snapshot directory back.

    Args:
        path: The snapshot directory (``<out_dir>/<version>``).
        verify: Recompute the content hash and fail if it differs from the recorded version.

    Returns:
        ``(tables, info)``.

    Raises:
        DataError: If the manifest or a table file is missing or corrupt, or the content does not match
            its version.
    """
    folder = Path(path)
    info = _info_from_json(folder)
    tables: dict[str, pd.DataFrame] = {}
    for name in info.row_counts:
        file = folder / f"{name}.parquet"
        try:
            tables[name] = pd.read_parquet(file)
        except FileNotFoundError:
            raise DataError(f"{file}: snapshot table missing") from None
        except Exception as exc:  # pyarrow raises several types for corrupt files
            raise DataError(f"{file}: cannot read snapshot table: {type(exc).__name__}: {exc}") from None
    if verify:
        version, _ = content_version(tables, info.source)
        if version != info.version:
            raise DataError(
                f"{folder}: snapshot content does not match its version {info.version} (got {version})"
            )
    return tables, info
