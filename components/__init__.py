"""KFP v2 components: one typed wrapper per pipeline step, each calling one ``creditops`` core function.

Every component runs on the project image (``Dockerfile`` at the repo root), which has ``creditops``, this
package and ``feast_repo`` installed; the KFP package is not re-installed at run time (offline clusters).
Configuration travels as one JSON string of :class:`creditops.config.Settings`, parsed once per step.
"""

import os

DEFAULT_IMAGE = "ghcr.io/creditops/creditops:0.1.0-python3.11"
# Read once at import, i.e. when the pipeline is compiled: CD sets it to the image it just pushed
# (`CREDITOPS_PIPELINE_IMAGE=registry/creditops@sha256:... creditops compile`); unset: the checked-in YAML.
BASE_IMAGE = os.environ.get("CREDITOPS_PIPELINE_IMAGE") or DEFAULT_IMAGE
