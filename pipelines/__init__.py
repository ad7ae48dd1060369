"""KFP pipelines (wiring only) and their compiled YAML."""
