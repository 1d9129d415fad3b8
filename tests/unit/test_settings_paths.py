"""Where the policy, the data and the database are by default: never where the package is
installed; the checkout's when started by bin/wo; the settings a user gives always win."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from workorder_pipeline.config.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def no_path_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("WO_CHECKOUT", "WO_POLICY_DIR", "WO_DATA_DIR", "WO_DATABASE_URL", "WO_CONFIG_FILE"):
        monkeypatch.delenv(name, raising=False)


def test_without_a_checkout_the_defaults_are_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    settings = Settings()
    assert settings.policy_dir == tmp_path / "policy"
    assert settings.data_dir == tmp_path / "var"
    assert settings.database_url == f"sqlite:///{tmp_path / 'var' / 'workorders.db'}"


def test_bin_wo_makes_the_checkout_the_default_wherever_it_is_started(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WO_CHECKOUT", str(ROOT))
    settings = Settings()
    assert settings.policy_dir == ROOT / "policy"
    assert settings.data_dir == ROOT / "var"
    assert settings.database_url == f"sqlite:///{ROOT / 'var' / 'workorders.db'}"


def test_the_environment_and_the_settings_file_win_over_the_checkout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "wo.toml"
    config.write_text(f'data_dir = "{tmp_path / "data"}"\n', encoding="utf-8")
    monkeypatch.setenv("WO_CHECKOUT", str(ROOT))
    monkeypatch.setenv("WO_CONFIG_FILE", str(config))
    monkeypatch.setenv("WO_POLICY_DIR", str(tmp_path / "rules"))
    settings = Settings()
    assert settings.policy_dir == tmp_path / "rules"
    assert settings.data_dir == tmp_path / "data"


def test_bin_wo_finds_the_checkouts_policy_from_another_directory(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WO_")}
    done = subprocess.run(
        [str(ROOT / "bin" / "wo"), "rules", "check"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"{ROOT / 'policy'}: ok")
