"""Resource requests and caching of the training and retraining steps (one table for both pipelines)."""

from kfp import dsl

#: task name -> (CPU request, memory request); tuning and fitting are the heavy steps.
REQUESTS: dict[str, tuple[str, str]] = {
    "tune-model": ("2", "4G"),
    "train-model": ("2", "4G"),
    "evaluate-gates": ("1", "2G"),
    "compare-with-champion": ("1", "2G"),
    "build-training-set": ("1", "2G"),
    "compute-features": ("1", "2G"),
}
DEFAULT_REQUEST = ("500m", "1G")
#: steps that must see new data or act on the registry every run: never served from the cache.
UNCACHED = {
    "resolve-run-settings",
    "ingest-data",
    "compare-with-champion",
    "register-model",
    "record-retraining",
}


def configure(*tasks: dsl.PipelineTask) -> None:
    """Set each task's CPU / memory requests and switch caching off where a step must rerun."""
    for task in tasks:
        cpu, memory = REQUESTS.get(task.name, DEFAULT_REQUEST)
        task.set_cpu_request(cpu).set_memory_request(memory)
        if task.name in UNCACHED:
            task.set_caching_options(False)
