"""The documentation: the site builds with ``mkdocs build --strict`` (no broken link, no page left
out, every docstring the API page renders well-formed), the generated pages cover every experiment
key and every command, and the README stays a page a newcomer can scan."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from tests.conftest import REPO


def test_the_site_builds_strictly_with_every_key_and_command(tmp_path):
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "--site-dir", str(tmp_path / "site")],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    page = (tmp_path / "site" / "experiment" / "index.html").read_text(encoding="utf-8")

    from flexseg.config import Experiment

    for name, field in Experiment.model_fields.items():
        section = getattr(field.annotation, "model_fields", None) or getattr(
            next((a for a in getattr(field.annotation, "__args__", ()) if hasattr(a, "model_fields")), None),
            "model_fields",
            None,
        )
        keys = list(section) if section else [name]
        for key in keys:
            assert f"<code>{key}</code>" in page, f"{name}.{key} is not in the generated key table"

    reference = (tmp_path / "site" / "cli" / "index.html").read_text(encoding="utf-8")
    from flexseg.cli import app

    commands = [c.name or c.callback.__name__ for c in app.registered_commands]
    assert len(commands) >= 12
    for command in commands:
        assert f"flexseg {command}" in reference, command
    api = (tmp_path / "site" / "python-api" / "index.html").read_text(encoding="utf-8")
    assert "segment" in api and "load_experiment" in api and "Raises" in api


def test_the_readme_is_short_and_its_links_lead_somewhere():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 250
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text)
    assert len(links) >= 10
    missing = [link for link in links if "://" not in link and not (REPO / link).exists()]
    assert not missing, missing
