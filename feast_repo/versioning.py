"""Feature versioning at ``feast apply``: services pin their features' hashes in their tags; changes need v2.

:func:`stamp_and_check` runs before every creditops ``apply`` (:func:`feast_repo.store.apply`): each
FeatureService about to be applied gets the current hashes of its features as tags
(:func:`creditops.features.versioning.service_tags`), and a service already registered with other hashes
is refused (:class:`~creditops.features.versioning.FeatureVersionError`). With ``bump=True`` a changed
service is applied as its next version instead (``credit_scoring_v2``) and the registered one is left as
it is, so both are served side by side from one registry.

Features not in the creditops registry (a dataset spec's columns) are hashed from their Feast field
(name, dtype, description).
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import MutableMapping

from feast import FeatureService, FeatureStore

from creditops.features.versioning import (
    FeatureVersionError,
    check_service,
    feature_hashes,
    next_version,
    pinned_hashes,
    service_tags,
)


def _service_features(service: FeatureService) -> dict[str, str]:
    """Feature -> a fallback hash of its Feast field, for every feature the service projects."""
    out = {}
    for projection in service.feature_view_projections:
        for field in projection.features:
            text = f"{field.name}|{field.dtype}|{field.description}"
            out[field.name] = hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
    return out


def current_hashes(service: FeatureService) -> dict[str, str]:
    """The current definition hash of each feature ``service`` projects (service order)."""
    fields = _service_features(service)
    known = {}
    for name in fields:
        try:
            known.update(feature_hashes([name]))
        except KeyError:
            known[name] = fields[name]
    return known


def _registered(store: FeatureStore, name: str) -> FeatureService | None:
    try:
        return store.get_feature_service(name)
    except Exception:  # noqa: BLE001 - Feast raises its own not-found class per registry backend
        return None


def stamp_and_check(
    store: FeatureStore, objects: MutableMapping[str, object], bump: bool = False
) -> list[str]:
    """Tag each FeatureService in ``objects`` with its hashes; refuse (or, with ``bump``, version) changes.

    ``objects`` is edited in place (a bumped service replaces the old one under its new name).

    Returns:
        The names of the services that will be applied.

    Raises:
        FeatureVersionError: a registered service's pinned hashes differ from the current definitions.
    """
    applied = []
    for key, obj in list(objects.items()):
        if not isinstance(obj, FeatureService):
            continue
        hashes = current_hashes(obj)
        name = obj.name
        while (registered := _registered(store, name)) is not None:
            try:
                check_service(name, pinned_hashes(registered.tags), hashes)
                break
            except FeatureVersionError:
                if not bump:
                    raise
                name = next_version(name)
        if name != obj.name:
            del objects[key]
            obj = copy.deepcopy(obj)
            obj.name = name
            objects[name] = obj
        obj.tags = {**obj.tags, **service_tags(hashes)}
        applied.append(name)
    return applied
