"""Feast feature repository for creditops (definitions built from creditops.features.registry)."""
