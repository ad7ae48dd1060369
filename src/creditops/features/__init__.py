"""creditops.features."""
