"""creditops.governance."""
