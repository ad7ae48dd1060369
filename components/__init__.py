"""KFP v2 components: one typed wrapper per pipeline step, each calling one ``creditops`` core function.

Every component runs on the project image (``Dockerfile`` at the repo root), which has ``creditops``, this
package and ``feast_repo`` installed; the KFP package is not re-installed at run time (offline clusters).
Configuration travels as one JSON string of :class:`creditops.config.Settings`, parsed once per step.
"""

BASE_IMAGE = "ghcr.io/creditops/creditops:0.1.0-python3.11"
