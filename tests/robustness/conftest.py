"""The robustness suites' shared project: raw pairs, a split and a model, all made by the real
command once per pytest run (each test gets a copy)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from tests.conftest import once_per_run, write_raw_pairs
from tests.robustness.test_processes import EXPERIMENT, flexseg


def _make_project(home: Path) -> None:
    write_raw_pairs(home, 24)
    (home / "t.yaml").write_text(yaml.safe_dump(EXPERIMENT))
    assert flexseg("split", "t.yaml", cwd=home)[0] == 0
    code, text = flexseg("train", "t.yaml", cwd=home)
    assert code == 0, text


@pytest.fixture(scope="session")
def project_once(tmp_path_factory) -> Path:
    """24 raw 64×64 pairs, split, and a model trained one epoch, all by the real command; built
    once per pytest run and never changed (each test gets a copy)."""
    return once_per_run(tmp_path_factory, "processes", _make_project)


@pytest.fixture
def project(project_once, tmp_path) -> Path:
    return Path(shutil.copytree(project_once, tmp_path / "p", symlinks=True))
