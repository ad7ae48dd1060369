"""creditops.data."""
