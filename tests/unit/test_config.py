from pathlib import Path

import pytest

from creditops.config import expand_vars, load_config
from creditops.errors import ConfigError


def test_defaults_are_embedded_and_resolve_to_absolute_paths(tmp_path: Path) -> None:
    settings = load_config().resolved(tmp_path)
    assert settings.workdir == (tmp_path / ".creditops").resolve()
    assert settings.mlflow.tracking_uri == f"sqlite:///{settings.workdir}/mlflow.db"
    assert settings.audit.url == f"sqlite:///{settings.workdir}/audit.db"
    assert settings.feast.online_store == "sqlite"


def test_env_vars_expand_with_defaults(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("feast:\n  online_store: ${ONLINE:-sqlite}\n  redis_connection: ${REDIS_HOST}:6379\n")
    with pytest.raises(ConfigError, match="REDIS_HOST"):
        load_config(cfg)
    assert expand_vars({"a": ["${X:-1}", "${Y}"]}, {"Y": "2"}) == {"a": ["1", "2"]}


def test_unknown_key_is_an_error_naming_the_field(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("training:\n  n_trails: 5\n")
    with pytest.raises(ConfigError, match="training.n_trails"):
        load_config(cfg)


def test_bad_value_names_the_field() -> None:
    with pytest.raises(ConfigError, match="feast.online_store"):
        load_config(None, {"feast": {"online_store": "dynamodb"}})
