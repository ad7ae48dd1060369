"""Content hashes of feature definitions, and the rule that a changed definition needs a new service version.

A feature's hash covers what it means: name, group, dtype, risk direction, valid range, description, the
adverse-action reason and the source code of the function computing it (``inspect.getsource``). A feature
service pins the hashes of its features when it is registered (the Feast adapter keeps them in the
FeatureService's tags, see ``feast_repo.versioning``) and a model manifest pins them too
(:func:`pin_manifest`), so a model is never served features that were redefined under the same name.

Re-registering a service whose features changed is refused (:func:`changed_features`,
:class:`FeatureVersionError`); the change ships as the next version (:func:`next_version`:
``credit_scoring_v1`` -> ``credit_scoring_v2``) registered beside the old one.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from creditops.errors import CreditOpsError

#: Tag keys of a registered FeatureService (Feast tags are strings).
TAG_HASHES = "creditops.feature_hashes"
TAG_SERVICE_HASH = "creditops.service_hash"
_VERSION = re.compile(r"^(.*_v)(\d+)$")


class FeatureVersionError(CreditOpsError):
    """A feature definition changed but its service kept its version."""


def _source(func: Callable[..., Any] | None) -> str:
    if func is None:
        return ""
    try:
        return inspect.getsource(func)
    except (OSError, TypeError):  # built-in or generated: its qualified name is what we can pin
        return f"{getattr(func, '__module__', '')}.{getattr(func, '__qualname__', repr(func))}"


def definition_hash(definition: Any, func: Callable[..., Any] | None = None) -> str:
    """sha256 (hex, 16 chars) of a feature definition's fields and its function's source.

    Args:
        definition: a ``FeatureDef`` / ``RequestFeatureDef`` (any object with ``name``, ``dtype``...).
        func: the function computing it (its source text is hashed).
    """
    fields = {
        key: getattr(definition, key, None)
        for key in ("name", "group", "dtype", "direction", "valid_range", "description", "reason")
    }
    fields["valid_range"] = list(fields["valid_range"] or (None, None))
    payload = json.dumps(fields, sort_keys=True) + "\n" + _source(func)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]


def feature_hashes(names: Iterable[str] | None = None) -> dict[str, str]:
    """Hash of every named feature (default: the model features of the registry), current definitions.

    Request-time features (:mod:`creditops.features.request`) are known too; any other name raises KeyError.
    """
    from creditops.features import registry, request
    from creditops.features.build import feature_function

    defs: dict[str, tuple[Any, Callable[..., Any] | None]] = {
        f.name: (f, feature_function(f.name)) for f in registry.FEATURES
    }
    for f in request.REQUEST_FEATURES:
        defs[f.name] = (f, getattr(request, f.name, None))
    wanted = list(defs if names is None else names)
    unknown = [n for n in wanted if n not in defs]
    if unknown:
        raise KeyError(f"no feature definition for {unknown}")
    return {n: definition_hash(*defs[n]) for n in wanted}


def service_hash(hashes: Mapping[str, str]) -> str:
    """One hash over a service's ordered (feature, hash) pairs."""
    text = json.dumps(list(hashes.items()))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def service_tags(hashes: Mapping[str, str]) -> dict[str, str]:
    """The FeatureService tags pinning ``hashes``."""
    return {TAG_HASHES: json.dumps(dict(hashes)), TAG_SERVICE_HASH: service_hash(hashes)}


def pinned_hashes(tags: Mapping[str, str]) -> dict[str, str] | None:
    """The hashes a registered service pinned (None: registered before versioning, nothing pinned)."""
    raw = tags.get(TAG_HASHES)
    return None if raw is None else dict(json.loads(raw))


def changed_features(pinned: Mapping[str, str], current: Mapping[str, str]) -> dict[str, str]:
    """Feature -> what changed between a service's pinned hashes and the current ones (empty: none)."""
    out = {}
    for name in dict.fromkeys([*pinned, *current]):
        if name not in current:
            out[name] = "removed"
        elif name not in pinned:
            out[name] = "added"
        elif pinned[name] != current[name]:
            out[name] = f"definition changed ({pinned[name]} -> {current[name]})"
    return out


def next_version(service: str) -> str:
    """``credit_scoring_v1`` -> ``credit_scoring_v2`` (a name without ``_vN`` gets ``_v2``)."""
    match = _VERSION.match(service)
    return f"{match.group(1)}{int(match.group(2)) + 1}" if match else f"{service}_v2"


def check_service(service: str, pinned: Mapping[str, str] | None, current: Mapping[str, str]) -> None:
    """Refuse to re-register ``service`` over features whose definitions changed.

    Raises:
        FeatureVersionError: names the service, each changed feature and the version to declare instead.
    """
    if pinned is None:
        return
    changes = changed_features(pinned, current)
    if changes:
        listed = "; ".join(f"{k}: {v}" for k, v in changes.items())
        raise FeatureVersionError(
            f"feature service {service} is registered with other feature definitions ({listed}); "
            f"register the change as {next_version(service)} beside {service} instead"
        )


def pin_manifest(manifest: Any, hashes: Mapping[str, str] | None = None) -> Any:
    """A copy of a model ``Manifest`` whose ``params`` pin its features' hashes and the service hash."""
    hashes = dict(hashes or feature_hashes(manifest.features))
    params = {**manifest.params, "feature_hashes": hashes, "feature_service_hash": service_hash(hashes)}
    return manifest.model_copy(update={"params": params})


def check_manifest(manifest: Any, service_pins: Mapping[str, str]) -> None:
    """Refuse a model whose pinned feature hashes differ from its service's (a redefined feature).

    Raises:
        FeatureVersionError: the features whose definitions differ.
    """
    pinned = manifest.params.get("feature_hashes")
    if pinned is None:
        return
    changes = changed_features(pinned, {f: service_pins.get(f, "") for f in pinned})
    if changes:
        raise FeatureVersionError(
            f"model {manifest.model_name} was trained on other definitions of {sorted(changes)} than "
            f"service {manifest.feature_service} serves"
        )
