"""The TreeSHAP engine: exact per-feature contributions of a model bundle, nothing else.

Reason codes (which contributions become adverse-action reasons) are :mod:`creditops.serving.reasons`.

Contributions are path-dependent TreeSHAP values in margin (log-odds) units, the same numbers xgboost's
``pred_contribs=True`` returns: one column per feature plus ``bias``; each row sums to the model margin.

xgboost's CPU TreeSHAP costs about 1.3 ms per row for a 300-tree depth-5 model, far too slow for batch
scoring with reason codes. For shallow trees the same exact values can be had much faster: on one leaf's path
the row only matters through which path conditions it satisfies (a bit pattern over the <= depth distinct
features on the path), so each leaf's Shapley values are tabulated once per bundle for all 2**d patterns
(the idea behind Fast TreeSHAP v2, Yang 2021). Leaf tables are then summed into tables per small subtree
("unit"), indexed by the prefix pattern above the unit and the outcomes of the unit's own splits, so a row
costs one threshold test per split and a few table lookups per tree. Batches run column-wise (each test
vectorised over a block of rows): about 16-20 us a row for 300 depth-5 trees and 45 features on this 2-core
machine, one thread; a single row about 80-100 us.
The tables are built with numba and checked against xgboost's own ``pred_contribs`` on a probe sample when a
bundle is first explained; any model the fast path cannot reproduce (categorical splits, deep trees,
multi-output, a mismatch) falls back to xgboost transparently (``TreeShap.fast`` / ``fallback_reason``).
"""

from __future__ import annotations

import json
import math
import os
import threading
import weakref
from pathlib import Path
from typing import Any

import numba
import numpy as np
import pandas as pd
import xgboost as xgb

__all__ = ["TreeShap", "contributions", "contributions_array", "explainer_for"]

# A leaf with d distinct path features stores 2**d * d values; beyond this depth the tables explode.
_MAX_FAST_DEPTH = 10
# A unit table has 2**(prefix slots + splits) rows; 10 bits = depth-2 subtrees of a depth-5 tree.
_UNIT_BITS = 10
_MAX_TABLE_VALUES = 64_000_000
# From this many rows the column-wise kernel (:func:`_shap_blocks`) beats the row-wise one (measured here:
# a single row is about 25 % slower column-wise, 2 rows even, 32 rows 2.5x faster); from _THREAD_ROWS rows
# the work is split over threads.
_BLOCK_ROWS = 2
_THREAD_ROWS = 256
_PROBE_TOLERANCE = 1e-3
# numba's disk cache lives in __pycache__ beside this file; in a read-only image (KServe) compile in memory.
# (No environment lookup here: importing a module never depends on the process environment.)
_CACHE = os.access(Path(__file__).parent, os.W_OK)


# --------------------------------------------------------------------------------------------------------
# numba kernels


@numba.njit(cache=_CACHE)
def _leaf_tables(
    leaf_value: np.ndarray,
    slot_off: np.ndarray,
    zero: np.ndarray,
    table_off: np.ndarray,
    table: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """Fill ``table`` with each leaf's Shapley values for every pattern of satisfied path features.

    For a leaf with value v, distinct path features 0..d-1, zero fractions z_k (cover share of the path) and
    one fractions o_k (1 when the row follows the path at every split on feature k), the leaf's part of the
    path-dependent value function is f(S) = v * prod_{k in S} o_k * prod_{k not in S} z_k, whose Shapley value
    is phi_i = v (o_i - z_i) sum_s w(s) e_s, with e_s the coefficient of x**s in prod_{k != i} (o_k x + z_k).
    """
    n_leaves = leaf_value.shape[0]
    coef = np.zeros(_MAX_FAST_DEPTH + 1)
    weight = np.zeros(_MAX_FAST_DEPTH + 1)
    for leaf in range(n_leaves):
        s0 = slot_off[leaf]
        d = slot_off[leaf + 1] - s0
        if d == 0:
            continue
        for s in range(d):
            weight[s] = math.gamma(s + 1) * math.gamma(d - s) / math.gamma(d + 1)
        v = leaf_value[leaf]
        t0 = table_off[leaf]
        for pattern in range(1 << d):
            for i in range(d):
                coef[0] = 1.0
                for s in range(1, d + 1):
                    coef[s] = 0.0
                n = 0
                for k in range(d):
                    if k == i:
                        continue
                    o = 1.0 if (pattern >> k) & 1 else 0.0
                    z = zero[s0 + k]
                    n += 1
                    for s in range(n, 0, -1):
                        coef[s] = coef[s] * z + coef[s - 1] * o
                    coef[0] = coef[0] * z
                total = 0.0
                for s in range(d):
                    total += weight[s] * coef[s]
                o_i = 1.0 if (pattern >> i) & 1 else 0.0
                table[t0 + pattern * d + i] = v * (o_i - zero[s0 + i]) * total


@numba.njit(cache=_CACHE)
def _unit_tables(
    unit_ps: np.ndarray,
    unit_m: np.ndarray,
    unit_nu: np.ndarray,
    unit_toff: np.ndarray,
    unit_leaf_off: np.ndarray,
    uleaf_d: np.ndarray,
    uleaf_toff: np.ndarray,
    uleaf_path_off: np.ndarray,
    upath_j: np.ndarray,
    upath_left: np.ndarray,
    upath_slot: np.ndarray,
    uleaf_pos_off: np.ndarray,
    uleaf_pos: np.ndarray,
    leaf_table: np.ndarray,
    table: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """Sum leaf tables into per-unit tables indexed by (prefix ok-bits, split outcomes inside the unit)."""
    for u in range(unit_ps.shape[0]):
        ps = unit_ps[u]
        nu = unit_nu[u]
        prefix_mask = (1 << ps) - 1
        for idx in range(1 << (ps + unit_m[u])):
            q = idx & prefix_mask
            g = idx >> ps
            base = unit_toff[u] + idx * nu
            for leaf in range(unit_leaf_off[u], unit_leaf_off[u + 1]):
                d = uleaf_d[leaf]
                bad = prefix_mask & ~q
                for e in range(uleaf_path_off[leaf], uleaf_path_off[leaf + 1]):
                    if ((g >> upath_j[e]) & 1) != upath_left[e]:
                        bad |= 1 << upath_slot[e]
                lbase = uleaf_toff[leaf] + (((1 << d) - 1) & ~bad) * d
                p0 = uleaf_pos_off[leaf]
                for k in range(d):
                    table[base + uleaf_pos[p0 + k]] += leaf_table[lbase + k]


@numba.njit(cache=_CACHE, inline="always")
def _bits(words: np.ndarray, s: int, m: int) -> int:  # pragma: no cover - compiled
    """Bits ``s .. s+m-1`` of the go-left bit string ``words`` (64 per int64 word), as an int."""
    if m == 0:
        return 0
    w, o = s >> 6, s & 63
    if o + m <= 64:
        return (words[w] >> o) & ((1 << m) - 1)
    low = (words[w] >> o) & ((1 << (64 - o)) - 1)  # o >= 1 here: an arithmetic shift's sign bits masked off
    return (low | (words[w + 1] << (64 - o))) & ((1 << m) - 1)


@numba.njit(cache=_CACHE, nogil=True)
def _shap_rows(
    X: np.ndarray,
    start: int,
    stop: int,
    out: np.ndarray,
    arrays: tuple,
    bias: float,
    max_nodes: int,
) -> None:  # pragma: no cover - compiled
    """Exact TreeSHAP for rows ``start:stop`` of X into ``out`` (n_rows, n_features + 1).

    ``arrays`` are :meth:`_Builder.finish`'s flattened trees and tables, ``bias`` the bias column's value.

    A tree's internal nodes are numbered in the pre-order the builder walks (right child first), so every
    unit's own splits are one contiguous run of the row's go-left bit string: one shift and mask per unit.
    """
    (in_feat, in_thr, in_defleft, tree_in_off, tree_edge_off, edge_parent, edge_pk, edge_child, edge_left,
     edge_slot, tree_unit_off, unit_root, unit_ps, unit_istart, unit_m, unit_nu, unit_toff, unit_feat_off,
     unit_feat, table) = arrays  # fmt: skip
    n_trees = tree_in_off.shape[0] - 1
    n_feat = X.shape[1]
    # 1024-row blocks: one tree's tables (tens of KB) are reused by many rows before the next tree evicts
    # them, and the float64 accumulator (block x features) still fits in L2. One request allocates one row.
    block = max(1, min(1024, stop - start))
    words = np.zeros((max_nodes + 63) // 64 + 1, dtype=np.int64)
    bad = np.zeros(max_nodes, dtype=np.int64)
    acc = np.empty((block, n_feat), dtype=np.float64)
    # Tree-outer / row-inner over row blocks: one tree's tables stay in cache while a block is done.
    for b0 in range(start, stop, block):
        b1 = min(b0 + block, stop)
        acc[: b1 - b0, :] = 0.0
        for t in range(n_trees):
            i0 = tree_in_off[t]
            ni = tree_in_off[t + 1] - i0
            for r in range(b0, b1):
                for w in range((ni + 63) >> 6):
                    words[w] = 0
                for k in range(ni):
                    x = X[r, in_feat[i0 + k]]
                    left = (x < in_thr[i0 + k]) | ((in_defleft[i0 + k] != 0) & np.isnan(x))
                    words[k >> 6] |= np.int64(left) << (k & 63)
                bad[0] = 0
                for e in range(tree_edge_off[t], tree_edge_off[t + 1]):
                    pk = edge_pk[e]
                    went_left = (words[pk >> 6] >> (pk & 63)) & 1
                    bad[edge_child[e]] = bad[edge_parent[e]] | ((went_left ^ edge_left[e]) << edge_slot[e])
                for u in range(tree_unit_off[t], tree_unit_off[t + 1]):
                    ps = unit_ps[u]
                    own = _bits(words, unit_istart[u], unit_m[u])
                    idx = (((1 << ps) - 1) & ~bad[unit_root[u]]) | (own << ps)
                    nu = unit_nu[u]
                    base = unit_toff[u] + idx * nu
                    f0 = unit_feat_off[u]
                    for k in range(nu):
                        acc[r - b0, unit_feat[f0 + k]] += table[base + k]
        for r in range(b0, b1):
            for f in range(n_feat):
                out[r, f] = acc[r - b0, f]
            out[r, n_feat] = bias


@numba.njit(cache=_CACHE, nogil=True)
def _shap_blocks(
    X: np.ndarray,
    start: int,
    stop: int,
    out: np.ndarray,
    arrays: tuple,
    bias: float,
    max_nodes: int,
) -> None:  # pragma: no cover - compiled
    """:func:`_shap_rows` for many rows: the same values, with the rows as the innermost loop.

    A block's features are transposed once, so each split's threshold test and each edge's ok-bit update
    runs over a contiguous column of the block's rows (the compiler vectorises both); only the table reads
    stay per row. Blocks of up to 4,096 rows (bounded so the per-node array stays near 8 MB): 2-3x faster
    than row by row on a batch, slower on a single row, so :meth:`TreeShap._fast` picks by size
    (:data:`_BLOCK_ROWS`).
    """
    (in_feat, in_thr, in_defleft, tree_in_off, tree_edge_off, edge_parent, edge_pk, edge_child, edge_left,
     edge_slot, tree_unit_off, unit_root, unit_ps, unit_istart, unit_m, unit_nu, unit_toff, unit_feat_off,
     unit_feat, table) = arrays  # fmt: skip
    n_trees = tree_in_off.shape[0] - 1
    n_feat = X.shape[1]
    block = max(1, min(4096, stop - start, max(256, (1 << 21) // max(max_nodes, 1))))
    XT = np.empty((n_feat, block), dtype=np.float32)
    words = np.zeros(((max_nodes + 63) // 64 + 1, block), dtype=np.int64)
    bad = np.zeros((max_nodes, block), dtype=np.int32)
    acc = np.empty((block, n_feat), dtype=np.float64)
    for b0 in range(start, stop, block):
        nb = min(b0 + block, stop) - b0
        for r in range(nb):
            for f in range(n_feat):
                XT[f, r] = X[b0 + r, f]
        acc[:nb, :] = 0.0
        for t in range(n_trees):
            i0 = tree_in_off[t]
            ni = tree_in_off[t + 1] - i0
            words[: (ni + 63) >> 6, :nb] = 0
            for k in range(ni):
                xs, ws = XT[in_feat[i0 + k]], words[k >> 6]
                thr, default_left, shift = in_thr[i0 + k], in_defleft[i0 + k] != 0, np.int64(k & 63)
                for r in range(nb):
                    x = xs[r]
                    ws[r] |= np.int64((x < thr) | (default_left & (x != x))) << shift
            bad[0, :nb] = 0
            for e in range(tree_edge_off[t], tree_edge_off[t + 1]):
                pk = edge_pk[e]
                ws, shift = words[pk >> 6], np.int64(pk & 63)
                turn, slot = np.int64(edge_left[e]), np.int64(edge_slot[e])
                parent, child = bad[edge_parent[e]], bad[edge_child[e]]
                for r in range(nb):
                    child[r] = parent[r] | np.int32((((ws[r] >> shift) & 1) ^ turn) << slot)
            for u in range(tree_unit_off[t], tree_unit_off[t + 1]):
                ps, m, s = unit_ps[u], unit_m[u], unit_istart[u]
                w, o = s >> 6, s & 63
                prefix, own_mask = (np.int64(1) << ps) - 1, (np.int64(1) << m) - 1
                nu, toff, f0 = unit_nu[u], unit_toff[u], unit_feat_off[u]
                root_bad = bad[unit_root[u]]
                for r in range(nb):
                    if m == 0:
                        own = np.int64(0)
                    elif o + m <= 64:
                        own = (words[w, r] >> o) & own_mask
                    else:  # o >= 1 here: an arithmetic shift's sign bits masked off
                        low = (words[w, r] >> o) & ((np.int64(1) << (64 - o)) - 1)
                        own = (low | (words[w + 1, r] << (64 - o))) & own_mask
                    base = toff + ((prefix & ~np.int64(root_bad[r])) | (own << ps)) * nu
                    for k in range(nu):
                        acc[r, unit_feat[f0 + k]] += table[base + k]
        for r in range(nb):
            for f in range(n_feat):
                out[b0 + r, f] = acc[r, f]
            out[b0 + r, n_feat] = bias


# --------------------------------------------------------------------------------------------------------
# the explainer


class TreeShap:
    """Exact path-dependent TreeSHAP for one xgboost binary-logistic booster (tabulated; see module doc).

    Args:
        booster: the trained booster.
        features: ordered model feature names (the manifest order).
        probe: optional rows (n, n_features) used to check the fast path against ``pred_contribs``.
    """

    def __init__(self, booster: xgb.Booster, features: list[str], probe: np.ndarray | None = None) -> None:
        self.booster = booster
        self.features = list(features)
        self.fast = False
        self.fallback_reason = ""
        self._lock = threading.Lock()
        try:
            self._build(json.loads(bytes(booster.save_raw(raw_format="json"))))
        except _Unsupported as exc:
            self.fallback_reason = str(exc)
            return
        self._bias = self._probe_bias()
        self.fast = True
        sample = probe if probe is not None and len(probe) else self._default_probe()
        err = self._max_error(np.ascontiguousarray(sample[:64], dtype=np.float32))
        if not err <= _PROBE_TOLERANCE:
            self.fast = False
            self.fallback_reason = f"fast TreeSHAP disagrees with xgboost by {err:.2e}"

    # -- construction ----------------------------------------------------------------------------------
    def _build(self, model: dict[str, Any]) -> None:
        learner = model["learner"]
        booster = learner["gradient_booster"]
        if booster.get("name") != "gbtree":
            raise _Unsupported(f"booster type {booster.get('name')!r}")
        params = learner["learner_model_param"]
        if int(params.get("num_class", "0")) > 1 or int(params.get("num_target", "1")) > 1:
            raise _Unsupported("multi-output model")
        n_features = int(params["num_feature"])
        if n_features != len(self.features):
            raise _Unsupported(f"booster has {n_features} features, manifest {len(self.features)}")
        b = _Builder()
        for tree in booster["model"]["trees"]:
            if any(tree.get("split_type", [])) or tree.get("categories_nodes"):
                raise _Unsupported("categorical splits")
            b.add_tree(tree)
        self._arrays = b.finish()
        self._max_nodes = b.max_nodes

    def _probe_bias(self) -> float:
        # The bias column (base margin + expected tree output) straight from xgboost, so base_score
        # encodings across xgboost versions never matter.
        x = np.zeros((1, len(self.features)), dtype=np.float32)
        return float(self._xgb(x)[0, -1])

    def _default_probe(self) -> np.ndarray:
        # Thresholds +- a little, so both sides of many splits are exercised.
        rng = np.random.default_rng(0)
        n_f = len(self.features)
        probe = rng.normal(size=(32, n_f)).astype(np.float32)
        for f in range(n_f):
            thr = self._arrays[1][self._arrays[0] == f]
            if thr.size:
                probe[:, f] = rng.choice(thr, size=32) + rng.normal(scale=1e-3, size=32) * (
                    1 + np.abs(thr).max()
                )
        probe[0, 0] = np.nan
        return probe

    def _max_error(self, sample: np.ndarray) -> float:
        if not len(sample):
            return 0.0
        return float(np.abs(self._fast(sample) - self._xgb(sample)).max())

    # -- evaluation ------------------------------------------------------------------------------------
    def _xgb(self, X: np.ndarray) -> np.ndarray:
        with self._lock:  # Booster.predict is not guaranteed thread safe with a shared DMatrix cache
            dm = xgb.DMatrix(X, missing=np.nan, nthread=1 if len(X) < 1000 else -1)
            contribs = self.booster.predict(dm, pred_contribs=True, validate_features=False)
            return np.asarray(contribs, dtype=np.float32)

    def _fast(self, X: np.ndarray, n_threads: int = 1) -> np.ndarray:
        n = X.shape[0]
        out = np.empty((n, X.shape[1] + 1), dtype=np.float32)
        args = (self._arrays, self._bias, self._max_nodes)
        kernel = _shap_blocks if n >= _BLOCK_ROWS else _shap_rows
        if n_threads <= 1 or n < _THREAD_ROWS:
            kernel(X, 0, n, out, *args)
            return out
        # nogil kernel: plain threads share the tables without numba's threading layer.
        bounds = np.linspace(0, n, n_threads + 1).astype(np.int64)
        workers = [
            threading.Thread(target=kernel, args=(X, int(a), int(b), out, *args))
            for a, b in zip(bounds[:-1], bounds[1:], strict=True)
        ]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        return out

    def shap_values(self, X: np.ndarray, n_threads: int | None = None) -> np.ndarray:
        """Contributions (n_rows, n_features + 1) in margin units; last column is the bias.

        Args:
            X: float32 matrix in manifest feature order (NaN = missing).
            n_threads: worker threads for large inputs (default: all cores).
        """
        X = np.ascontiguousarray(X, dtype=np.float32)
        if X.ndim != 2 or X.shape[1] != len(self.features):
            raise ValueError(f"expected (n, {len(self.features)}) matrix, got {X.shape}")
        if not self.fast:
            return self._xgb(X)
        return self._fast(X, n_threads or _cpu_count())


class _Builder:
    """Flattens xgboost JSON trees into the arrays the kernels read.

    A tree is cut into *units*: subtrees small enough that their total contribution is a table indexed by
    the ok-bits of the path features above them (``ps`` prefix slots) and the outcomes of their own ``m``
    splits (2**(ps+m) rows). Slots are numbered by first appearance on the root path, so a node's slot
    numbering is shared by every leaf below it.
    """

    def __init__(self) -> None:
        self.max_nodes = 1
        # internal nodes only, per tree in the builder's pre-order (right child first)
        self.in_feat: list[np.ndarray] = []
        self.in_thr: list[np.ndarray] = []
        self.in_defleft: list[np.ndarray] = []
        self.tree_in_off = [0]
        self.edges: list[tuple[int, int, int, int, int]] = []
        self.tree_edge_off = [0]
        self.units: list[dict[str, Any]] = []
        self.tree_unit_off = [0]
        # leaves (for the leaf tables)
        self.leaf_value: list[float] = []
        self.leaf_slot_off = [0]
        self.leaf_zero: list[float] = []
        self.leaf_toff = [0]

    def add_tree(self, tree: dict[str, Any]) -> None:
        left, right = tree["left_children"], tree["right_children"]
        split_idx, cond, cover = tree["split_indices"], tree["split_conditions"], tree["sum_hessian"]
        n_nodes = len(left)
        self.max_nodes = max(self.max_nodes, n_nodes)
        n_internal = [0] * n_nodes
        order, todo = [], [0]
        while todo:  # pre-order, right child first (as the walks below); reversed, children before parents
            n = todo.pop()
            order.append(n)
            if left[n] != -1:
                todo.extend((left[n], right[n]))
        for n in reversed(order):
            if left[n] != -1:
                n_internal[n] = 1 + n_internal[left[n]] + n_internal[right[n]]
        internal = [n for n in order if left[n] != -1]
        kpos = {n: k for k, n in enumerate(internal)}
        self.in_feat.append(np.array([split_idx[n] for n in internal], dtype=np.int64))
        self.in_thr.append(np.array([cond[n] for n in internal], dtype=np.float32))
        self.in_defleft.append(np.array([tree["default_left"][n] for n in internal], dtype=np.int64))
        self.tree_in_off.append(self.tree_in_off[-1] + len(internal))

        def ratio(parent: int, child: int) -> float:
            c = float(cover[parent])
            return float(cover[child]) / c if c > 0 else 0.5

        # Walk the upper tree; `slots` maps feature -> slot along the root path, `zeros` the path's covers.
        stack: list[tuple[int, dict[int, int], dict[int, float]]] = [(0, {}, {})]
        while stack:
            node, slots, zeros = stack.pop()
            if left[node] == -1 or len(slots) + n_internal[node] <= _UNIT_BITS:
                self._add_unit(node, slots, zeros, left, right, split_idx, cond, ratio, kpos)
                continue
            f = split_idx[node]
            slot = slots.get(f, len(slots))
            for child, is_left in ((left[node], 1), (right[node], 0)):
                self.edges.append((node, kpos[node], child, is_left, slot))
                z = dict(zeros)
                z[f] = z.get(f, 1.0) * ratio(node, child)
                stack.append((child, {**slots, f: slot}, z))
        self.tree_edge_off.append(len(self.edges))
        self.tree_unit_off.append(len(self.units))

    def _add_unit(self, root, slots, zeros, left, right, split_idx, cond, ratio, kpos) -> None:  # noqa: ANN001
        inodes: list[int] = []
        feats = list(slots)  # prefix features in slot order (dicts keep insertion order)
        leaves: list[dict[str, Any]] = []
        stack: list[tuple[int, dict[int, int], dict[int, float], list[tuple[int, int, int]]]] = [
            (root, dict(slots), dict(zeros), [])
        ]
        while stack:
            node, lslots, lzeros, path = stack.pop()
            if left[node] == -1:
                d = len(lslots)
                if d > _MAX_FAST_DEPTH:
                    raise _Unsupported(f"tree path with {d} distinct features > {_MAX_FAST_DEPTH}")
                self.leaf_value.append(float(cond[node]))
                self.leaf_zero.extend(lzeros.get(f, 1.0) for f in lslots)
                self.leaf_slot_off.append(len(self.leaf_zero))
                toff = self.leaf_toff[-1]
                self.leaf_toff.append(toff + (1 << d) * d)
                if self.leaf_toff[-1] > _MAX_TABLE_VALUES:
                    raise _Unsupported("TreeSHAP tables too large")
                leaves.append({"d": d, "toff": toff, "path": path, "feats": list(lslots)})
                continue
            j = len(inodes)
            inodes.append(node)
            f = split_idx[node]
            if f not in feats:
                feats.append(f)
            slot = lslots.get(f, len(lslots))
            for child, is_left in ((left[node], 1), (right[node], 0)):
                z = dict(lzeros)
                z[f] = z.get(f, 1.0) * ratio(node, child)
                stack.append((child, {**lslots, f: slot}, z, [*path, (j, is_left, slot)]))
        if len(slots) + len(inodes) > _UNIT_BITS + _MAX_FAST_DEPTH:
            raise _Unsupported("unit too large")
        istart = kpos.get(root, 0)
        if [kpos[n] for n in inodes] != list(range(istart, istart + len(inodes))):  # pragma: no cover
            raise _Unsupported("unit splits are not one run of the tree's pre-order")
        pos = {f: i for i, f in enumerate(feats)}
        for leaf in leaves:
            leaf["pos"] = [pos[f] for f in leaf["feats"]]
        self.units.append(
            {
                "root": root,
                "ps": len(slots),
                "istart": istart,
                "inodes": inodes,
                "feats": feats,
                "leaves": leaves,
            }
        )

    def finish(self) -> tuple[np.ndarray, ...]:
        leaf_table = np.zeros(self.leaf_toff[-1], dtype=np.float64)
        _leaf_tables(
            np.asarray(self.leaf_value, dtype=np.float64),
            np.asarray(self.leaf_slot_off, dtype=np.int64),
            np.asarray(self.leaf_zero, dtype=np.float64),
            np.asarray(self.leaf_toff, dtype=np.int64),
            leaf_table,
        )
        units = self.units
        i64 = np.int64
        unit_ps = np.array([u["ps"] for u in units], dtype=i64)
        unit_m = np.array([len(u["inodes"]) for u in units], dtype=i64)
        unit_nu = np.array([len(u["feats"]) for u in units], dtype=i64)
        sizes = (1 << (unit_ps + unit_m)) * unit_nu
        unit_toff = np.concatenate([[0], np.cumsum(sizes)]).astype(i64)
        if unit_toff[-1] > _MAX_TABLE_VALUES:
            raise _Unsupported("TreeSHAP unit tables too large")
        leaves = [leaf for u in units for leaf in u["leaves"]]
        unit_leaf_off = np.concatenate([[0], np.cumsum([len(u["leaves"]) for u in units])]).astype(i64)
        paths = [e for leaf in leaves for e in leaf["path"]]
        table = np.zeros(int(unit_toff[-1]), dtype=np.float64)
        _unit_tables(
            unit_ps,
            unit_m,
            unit_nu,
            unit_toff,
            unit_leaf_off,
            np.array([leaf["d"] for leaf in leaves], dtype=i64),
            np.array([leaf["toff"] for leaf in leaves], dtype=i64),
            np.concatenate([[0], np.cumsum([len(leaf["path"]) for leaf in leaves])]).astype(i64),
            np.array([e[0] for e in paths], dtype=i64),
            np.array([e[1] for e in paths], dtype=i64),
            np.array([e[2] for e in paths], dtype=i64),
            np.concatenate([[0], np.cumsum([len(leaf["pos"]) for leaf in leaves])]).astype(i64),
            np.array([p for leaf in leaves for p in leaf["pos"]], dtype=i64),
            leaf_table,
            table,
        )
        edges = np.array(self.edges, dtype=i64).reshape(-1, 5)
        return (
            np.concatenate(self.in_feat),
            np.concatenate(self.in_thr),
            np.concatenate(self.in_defleft),
            np.asarray(self.tree_in_off, dtype=i64),
            np.asarray(self.tree_edge_off, dtype=i64),
            *(np.ascontiguousarray(edges[:, c]) for c in range(5)),
            np.asarray(self.tree_unit_off, dtype=i64),
            np.array([u["root"] for u in units], dtype=i64),
            unit_ps,
            np.array([u["istart"] for u in units], dtype=i64),
            unit_m,
            unit_nu,
            unit_toff,
            np.concatenate([[0], np.cumsum(unit_nu)]).astype(i64),
            np.array([f for u in units for f in u["feats"]], dtype=i64),
            table.astype(np.float32),
        )


class _Unsupported(Exception):
    """The booster needs xgboost's own TreeSHAP."""


def _cpu_count() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


_EXPLAINERS: weakref.WeakKeyDictionary[Any, TreeShap] = weakref.WeakKeyDictionary()
_EXPLAINERS_LOCK = threading.Lock()


def explainer_for(bundle: Any) -> TreeShap:
    """The (cached) TreeSHAP explainer of a bundle; built on first use, probed on the bundle's reference."""
    booster = bundle.booster
    with _EXPLAINERS_LOCK:
        explainer = _EXPLAINERS.get(booster)
        if explainer is None:
            features = list(bundle.manifest.features)
            probe = None
            reference = getattr(bundle, "reference", None)
            if isinstance(reference, pd.DataFrame) and set(features) <= set(reference.columns):
                probe = reference[features].head(64).to_numpy(dtype=np.float32)
            explainer = TreeShap(booster, features, probe)
            _EXPLAINERS[booster] = explainer
    return explainer


def _matrix(bundle: Any, X: pd.DataFrame | np.ndarray) -> np.ndarray:
    if isinstance(X, pd.DataFrame):
        return X[list(bundle.manifest.features)].to_numpy(dtype=np.float32)
    return np.asarray(X, dtype=np.float32)


def contributions_array(bundle: Any, X: pd.DataFrame | np.ndarray) -> np.ndarray:
    """Contributions as a float32 array (n_rows, n_features + 1), last column the bias (margin units)."""
    return explainer_for(bundle).shap_values(_matrix(bundle, X))


def contributions(bundle: Any, X: pd.DataFrame | np.ndarray) -> pd.DataFrame:
    """Exact TreeSHAP contributions: one column per manifest feature plus ``bias`` (margin units).

    Each row sums to the model margin (log-odds before calibration), as with xgboost ``pred_contribs``.
    """
    values = contributions_array(bundle, X)
    index = X.index if isinstance(X, pd.DataFrame) else None
    return pd.DataFrame(values, columns=[*bundle.manifest.features, "bias"], index=index)
