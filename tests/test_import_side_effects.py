"""Importing flexseg changes nothing in the process that imports it: Pillow's decompression-bomb
guard, OpenCV's log level and flexseg's own write hook stay as they were."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from tests.conftest import REPO

PROBE = textwrap.dedent(
    """
    import importlib, json, pkgutil
    import cv2
    from PIL import Image
    import flexseg, flexseg.fsutil as fsutil

    def state():
        return {
            "pillow_guard": Image.MAX_IMAGE_PIXELS,
            "opencv_log_level": int(cv2.utils.logging.getLogLevel()),
            "write_hook": repr(fsutil.before_write),
        }

    before = state()
    names = [m.name for m in pkgutil.walk_packages(flexseg.__path__, "flexseg.")]
    for name in names:
        importlib.import_module(name)
    print(json.dumps({"modules": len(names), "before": before, "after": state()}))
    """
)


def test_importing_every_module_changes_no_global_state():
    import json

    proc = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    assert found["modules"] > 40  # it did import them: cli, commands, data, model, training …
    assert found["after"] == found["before"], found


def test_an_image_over_pillows_guard_but_within_flexsegs_limit_is_read(tmp_path, monkeypatch):
    """Pillow's guard stays on for the process; flexseg's own limit decides for its reads."""
    import numpy as np
    from PIL import Image

    from flexseg.data.io import read_image

    path = tmp_path / "wide.png"
    Image.fromarray(np.zeros((40, 50), np.uint8)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 500)  # a process with a strict guard: 2000 px is over twice it
    assert read_image(path).shape == (40, 50, 3)
    assert Image.MAX_IMAGE_PIXELS == 500  # left as the process set it
    monkeypatch.setenv("FLEXSEG_MAX_PIXELS", "1000")
    import pytest

    from flexseg.errors import DataError

    with pytest.raises(DataError, match="limit"):
        read_image(path)


def test_file_work_uses_the_cpus_this_process_may_use(monkeypatch):
    import os

    import pytest

    from flexseg import settings
    from flexseg.errors import ConfigError

    monkeypatch.delenv("FLEXSEG_WORKERS", raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 3, 5})  # as under taskset -c 0,3,5
    assert settings.workers() == 3
    monkeypatch.setenv("FLEXSEG_WORKERS", "7")
    assert settings.workers() == 7
    for bad in ("0", "many"):
        monkeypatch.setenv("FLEXSEG_WORKERS", bad)
        with pytest.raises(ConfigError, match="FLEXSEG_WORKERS"):
            settings.workers()
