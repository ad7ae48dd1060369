"""Benchmark the data layer at scale: generate a synthetic world, validate it, build feature tables.

Usage: ``python bench/data_pipeline.py --applicants 500000``. Prints a few human lines, then as the LAST
line one JSON object with the numbers (``features_s`` is null when ``creditops.features.build`` is absent).
"""

from __future__ import annotations

import argparse
import importlib
import json
import resource
import sys
import time


def peak_rss_gb() -> float:
    # ru_maxrss is KiB on Linux (bytes on macOS)
    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 1e9


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--applicants", type=int, default=500_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--skip-features", action="store_true", help="time generate + validate only")
    args = parser.parse_args(argv)

    from creditops.data.synthetic import generate_world
    from creditops.data.validation import validate_world

    start = time.perf_counter()
    world = generate_world(args.applicants, seed=args.seed)
    generate_s = time.perf_counter() - start
    print(
        f"generated {len(world.applications):,} applicants, {len(world.bureau):,} bureau rows, "
        f"{len(world.transactions):,} transactions in {generate_s:.1f} s "
        f"(default rate {world.applications['defaulted'].mean():.3f})",
        flush=True,
    )

    t = time.perf_counter()
    result = validate_world(world)
    validate_s = time.perf_counter() - t
    quarantined = sum(c["quarantined"] for c in result.counts.values())
    print(f"validated in {validate_s:.1f} s: {quarantined:,} rows quarantined", flush=True)

    features_s = None
    try:
        build = None if args.skip_features else importlib.import_module("creditops.features.build")
    except ImportError as exc:
        build = None
        print(f"features skipped: creditops.features.build not importable ({exc})", flush=True)
    if build is not None:
        t = time.perf_counter()
        tables = build.build_feature_tables(world)
        features_s = time.perf_counter() - t
        sizes = ", ".join(f"{k} {len(v):,}" for k, v in tables.items())
        print(f"built feature tables in {features_s:.1f} s ({sizes})", flush=True)

    total_s = time.perf_counter() - start
    numbers = {
        "applicants": len(world.applications),
        "bureau_rows": len(world.bureau),
        "transactions": len(world.transactions),
        "generate_s": round(generate_s, 2),
        "validate_s": round(validate_s, 2),
        "features_s": None if features_s is None else round(features_s, 2),
        "total_s": round(total_s, 2),
        "peak_rss_gb": round(peak_rss_gb(), 2),
    }
    print(f"total {total_s:.1f} s, peak RSS {numbers['peak_rss_gb']:.2f} GB")
    print(json.dumps(numbers))
    return numbers


if __name__ == "__main__":
    main()
