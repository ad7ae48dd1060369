"""creditops.monitoring."""
