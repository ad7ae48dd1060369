"""Offline checks of the deploy artefacts: render, then validate against the schemas the API server uses.

Every kustomize overlay is rendered; each InferenceService is validated against the KServe CRD with what the
API server adds, and each built-in kind with kubernetes-validate.

JSON Schema alone is laxer than the API server, so the CRD schema is tightened before use:
unknown fields are rejected (``additionalProperties: false`` wherever a schema lists ``properties``, has no
``additionalProperties`` and no ``x-kubernetes-preserve-unknown-fields``), ``x-kubernetes-list-type: map``
lists must have unique ``x-kubernetes-list-map-keys``, ``metadata.name`` must be a DNS-1035 label, and
``canaryTrafficPercent`` must be within 0..100 (the schema does not range-check it).

Usage: ``python tools/deploy_checks.py [OVERLAY_DIR ...]`` (default: every manifests/overlays/*); prints one
line per finding and a JSON summary last; exit 1 on any finding.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess  # nosec B404  # runs kubectl (a fixed argv) to render kustomize overlays
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
OVERLAYS = ROOT / "manifests" / "overlays"
_CRD_FILE = "serving.kserve.io_inferenceservices.yaml"
# shared/ sits beside the checkout (CI's fresh clone) or two levels up (a worktree under /work/wt/).
_CRD_CANDIDATES = [
    Path(os.environ["CREDITOPS_KSERVE_CRD"]) if os.environ.get("CREDITOPS_KSERVE_CRD") else None,
    ROOT.parent / "shared" / "crds" / _CRD_FILE,
    ROOT.parent.parent / "shared" / "crds" / _CRD_FILE,
]
CRD_PATH = next((p for p in _CRD_CANDIDATES if p is not None and p.exists()), _CRD_CANDIDATES[1])
K8S_VERSION = "1.32"
DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
# Kinds that are custom resources without a CRD here: checked for a DNS-1035 name and an apiVersion only.
UNCHECKED_CRS = {("serving.kserve.io/v1alpha1", "ServingRuntime")}


def kubectl() -> str:
    """The kubectl 1.32 binary (kustomize v5.5): the versioned binary if present, else the dispatcher."""
    return shutil.which("kubectl.1.32") or shutil.which("kubectl") or "kubectl"


def render_text(overlay: str | Path) -> str:
    """``kubectl kustomize overlay`` as YAML text (raises CalledProcessError on a render error)."""
    return subprocess.run(  # nosec B603  # fixed argv, no shell
        [kubectl(), "kustomize", str(overlay)], check=True, capture_output=True, text=True
    ).stdout


def render(overlay: str | Path) -> list[dict[str, Any]]:
    """``kubectl kustomize overlay`` parsed into documents (raises CalledProcessError on a render error)."""
    return [d for d in yaml.safe_load_all(render_text(overlay)) if d]


def strict_schema(schema: Any) -> Any:
    """A copy of an OpenAPI v3 schema that rejects unknown fields the way the API server prunes/refuses."""
    schema = copy.deepcopy(schema)

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if (
                "properties" in node
                and "additionalProperties" not in node
                and not node.get("x-kubernetes-preserve-unknown-fields")
            ):
                node["additionalProperties"] = False
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    # Top level: apiVersion/kind/metadata/spec/status only; metadata is validated by the server itself.
    schema.setdefault("properties", {})["metadata"] = {"type": "object"}
    return schema


def load_crd_schema(path: Path = CRD_PATH) -> dict[str, Any]:
    """The InferenceService v1beta1 openAPIV3Schema (YAML parsed once, cached as JSON beside the venv)."""
    if not path.exists():
        raise FileNotFoundError(
            f"KServe CRD not found at {path}: put shared/ beside the checkout or set CREDITOPS_KSERVE_CRD"
        )
    cache = ROOT / ".creditops" / "cache" / f"isvc-schema-{path.stat().st_mtime_ns}.json"
    if cache.exists():
        return json.loads(cache.read_text())
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    crd = yaml.load(path.read_text(), Loader=loader)  # nosec B506  # CSafeLoader/SafeLoader only
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1beta1")
    schema = version["schema"]["openAPIV3Schema"]
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(schema))
    return schema


def _list_map_errors(schema: Any, value: Any, path: str) -> Iterator[str]:
    """Duplicate keys in ``x-kubernetes-list-type: map`` lists (the API server refuses them)."""
    if not isinstance(schema, dict):
        return
    if isinstance(value, list):
        if schema.get("x-kubernetes-list-type") == "map":
            keys = schema.get("x-kubernetes-list-map-keys", [])
            seen: set[tuple[Any, ...]] = set()
            for item in value:
                if isinstance(item, dict):
                    key = tuple(item.get(k) for k in keys)
                    if key in seen:
                        yield f"{path}: duplicate entry for list-map key {dict(zip(keys, key, strict=True))}"
                    seen.add(key)
        for i, item in enumerate(value):
            yield from _list_map_errors(schema.get("items", {}), item, f"{path}[{i}]")
    elif isinstance(value, dict):
        props = schema.get("properties", {})
        for k, v in value.items():
            sub = props.get(k, schema.get("additionalProperties"))
            yield from _list_map_errors(sub, v, f"{path}.{k}")


class IsvcValidator:
    """Validates InferenceService documents against the tightened KServe CRD schema."""

    def __init__(self, schema: dict[str, Any] | None = None) -> None:
        import jsonschema

        self.schema = strict_schema(schema if schema is not None else load_crd_schema())
        self._validator = jsonschema.Draft7Validator(self.schema)

    def errors(self, doc: dict[str, Any]) -> list[str]:
        """Every finding for one InferenceService, each naming the field path."""
        found = [
            f"{'.'.join(str(p) for p in e.absolute_path) or '<root>'}: {e.message}"
            for e in self._validator.iter_errors(doc)
        ]
        found += list(_list_map_errors(self.schema, doc, "<root>"))
        name = (doc.get("metadata") or {}).get("name", "")
        if not DNS_1035.match(name) or len(name) > 63:
            found.append(f"metadata.name: {name!r} is not a DNS-1035 label")
        for component in ("predictor", "explainer", "transformer"):
            pct = ((doc.get("spec") or {}).get(component) or {}).get("canaryTrafficPercent")
            if pct is not None and not (isinstance(pct, int) and 0 <= pct <= 100):
                found.append(f"spec.{component}.canaryTrafficPercent: {pct!r} not within 0..100")
        for i, canary in enumerate((doc.get("spec") or {}).get("canary") or []):
            pct = canary.get("trafficPercent")
            if pct is not None and not (isinstance(pct, int) and 0 <= pct <= 100):
                found.append(f"spec.canary[{i}].trafficPercent: {pct!r} not within 0..100")
        return found


def builtin_errors(doc: dict[str, Any], version: str = K8S_VERSION) -> list[str]:
    """kubernetes-validate --strict findings for a built-in kind (unknown fields rejected)."""
    import kubernetes_validate

    try:
        kubernetes_validate.validate(doc, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return [f"{'.'.join(str(p) for p in exc.path) or '<root>'}: {exc.message}"]
    return []


def check_documents(docs: list[dict[str, Any]], isvc: IsvcValidator) -> tuple[list[str], dict[str, int]]:
    """Validate rendered documents; returns the findings and per-check counts."""
    findings: list[str] = []
    counts = {"inferenceservices": 0, "builtin": 0, "unchecked_cr": 0}
    for doc in docs:
        kind, api = doc.get("kind"), doc.get("apiVersion", "")
        where = f"{kind}/{(doc.get('metadata') or {}).get('name')}"
        if kind == "InferenceService" and api.startswith("serving.kserve.io/"):
            counts["inferenceservices"] += 1
            findings += [f"{where}: {e}" for e in isvc.errors(doc)]
        elif (api, kind) in UNCHECKED_CRS:
            counts["unchecked_cr"] += 1
            name = (doc.get("metadata") or {}).get("name", "")
            if not DNS_1035.match(name):
                findings.append(f"{where}: metadata.name is not a DNS-1035 label")
        elif "." in api.split("/")[0] and not api.split("/")[0].endswith("k8s.io"):
            findings.append(f"{where}: custom resource {api} has no schema here (add it to the checks)")
        else:
            counts["builtin"] += 1
            findings += [f"{where}: {e}" for e in builtin_errors(doc)]
    return findings, counts


def main(argv: list[str]) -> int:
    """Render + validate the overlays given (default: all); print findings and a JSON summary."""
    t0 = time.perf_counter()
    overlays = [Path(a) for a in argv] or sorted(p for p in OVERLAYS.iterdir() if p.is_dir())
    isvc = IsvcValidator()
    summary: dict[str, Any] = {"overlays": {}, "findings": 0}
    for overlay in overlays:
        try:
            docs = render(overlay)
        except subprocess.CalledProcessError as exc:
            print(f"{overlay}: kustomize failed: {exc.stderr.strip().splitlines()[-1:]}")
            summary["findings"] += 1
            continue
        findings, counts = check_documents(docs, isvc)
        for f in findings:
            print(f"{overlay.name}: {f}")
        summary["overlays"][overlay.name] = {"documents": len(docs), **counts, "findings": len(findings)}
        summary["findings"] += len(findings)
    summary["seconds"] = round(time.perf_counter() - t0, 2)
    print(json.dumps(summary))
    return 1 if summary["findings"] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
