"""Rollout helpers served from ``kserve/``: the local router's entry point and a test-only fault injector."""
