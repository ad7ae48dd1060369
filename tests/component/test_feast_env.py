"""``python -m feast_repo.store env|yaml`` point the bare Feast CLI at the store creditops filled."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from creditops.config import load_config
from feast_repo import store as fs

REPO = Path(fs.__file__).parent
FEAST = Path(sys.executable).parent / "feast"


def _env_lines(cwd: Path, *args: str) -> dict[str, str]:
    out = subprocess.run(
        [sys.executable, "-m", "feast_repo.store", "env", *args], cwd=cwd, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return dict(
        line.removeprefix("export ").replace("'", "").split("=", 1) for line in out.stdout.splitlines()
    )


def test_env_prints_the_workdir_store_not_the_repo_default(tmp_path: Path) -> None:
    env = _env_lines(tmp_path)
    assert env["CREDITOPS_FEAST_DATA_DIR"] == str((tmp_path / ".creditops" / "feast").resolve())
    assert env["CREDITOPS_FEAST_REGISTRY"] == str(
        (tmp_path / ".creditops" / "feast" / "registry.db").resolve()
    )
    assert not env["CREDITOPS_FEAST_DATA_DIR"].startswith(str(REPO))


def test_bare_feast_cli_sees_what_creditops_applied(tmp_path: Path, run_id: str) -> None:
    config = tmp_path / "creditops.yaml"
    config.write_text(f"workdir: work\nfeast:\n  project: creditops_test_{run_id}_env\n")
    settings = load_config(config).resolved(base=tmp_path)
    store = fs.open_store(config=settings.feast, data_dir=settings.feast.data_dir)
    fs.apply(store)
    try:
        env = _env_lines(tmp_path, str(config))
        assert env["CREDITOPS_FEAST_DATA_DIR"] == str(tmp_path / "work" / "feast")
        yaml_out = subprocess.run(
            [sys.executable, "-m", "feast_repo.store", "yaml", str(config)],
            cwd=tmp_path, capture_output=True, text=True,
        )  # fmt: skip
        assert yaml_out.returncode == 0, yaml_out.stderr[-2000:]
        fs_yaml = tmp_path / "feature_store.yaml"
        fs_yaml.write_text(yaml_out.stdout)
        done = subprocess.run(
            [str(FEAST), "-c", str(REPO), "-f", str(fs_yaml), "feature-services", "list"],
            env={"PATH": str(FEAST.parent), "HOME": str(tmp_path)},
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        assert "credit_scoring_v1" in done.stdout
    finally:
        fs.teardown(store)
