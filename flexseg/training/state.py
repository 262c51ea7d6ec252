"""Where a run's resume state lives and how it is read: no TensorFlow, so commands can check a
run folder before loading it (``resume.py`` writes the state)."""

from __future__ import annotations

import json
from pathlib import Path

from flexseg.errors import RunError

RESUME_DIR = "resume"
STATE_FILE = "state.json"


def state_path(run_dir: Path) -> Path:
    return run_dir / RESUME_DIR / STATE_FILE


def read_state(run_dir: Path) -> dict | None:
    path = state_path(run_dir)
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise RunError(f"{path}: unreadable resume state ({e}); start again with --force") from None
