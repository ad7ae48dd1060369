"""creditops.deploy."""
