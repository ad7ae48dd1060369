"""creditops: a credit-scoring MLOps platform (core package; never imports kfp, kserve or feast)."""

__version__ = "0.1.0"
