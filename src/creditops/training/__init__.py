"""creditops.training."""
