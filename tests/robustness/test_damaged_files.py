"""The files flexseg reads again (split.json, model.json, resume/state.json), damaged or foreign:
a separate flexseg process exits with the file's named error (3 for data, 4 for a run), one line
naming the file, no traceback, and changes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.robustness.test_processes import digest, flexseg, unchanged


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def one_error_line(text: str, name: str) -> None:
    errors = [line for line in text.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and name in errors[0], text


@pytest.mark.parametrize(
    "damage, expected",
    [
        (truncate, "not a readable flexseg split manifest"),
        (lambda p: p.write_text(json.dumps({"files": "everything"})), "not a valid flexseg split manifest"),
        (
            lambda p: p.write_text(json.dumps({**json.loads(p.read_text()), "counts": {"train": "many"}})),
            "counts.train",
        ),
    ],
)
def test_a_damaged_split_json_is_a_data_error(project, damage, expected):
    damage(project / "data" / "split.json")
    before = digest(project)
    commands = [("evaluate", "t.yaml")]
    if damage is truncate:  # train reads it too (the slice mapping, the DICOM windows)
        commands.append(("train", "t.yaml", "--force", "--set", "train.epochs=1"))
    for command in commands:
        code, text = flexseg(*command, cwd=project)
        assert code == 3, (command, text)
        one_error_line(text, "split.json")
        assert expected in text and "flexseg split again" in text, text
        unchanged(before, project)


@pytest.mark.parametrize(
    "damage, expected",
    [
        (truncate, "not a readable flexseg model description"),
        (lambda p: p.write_text(json.dumps({**json.loads(p.read_text()), "width": "64"})), "width"),
        (lambda p: p.write_text(json.dumps({**json.loads(p.read_text()), "layers": 7})), "layers"),
        (lambda p: p.write_text("[]"), "not a valid flexseg model description"),
    ],
)
def test_a_damaged_model_json_is_a_run_error(project, damage, expected):
    damage(project / "runs" / "t" / "model.json")
    before = digest(project)
    code, text = flexseg("infer", "--model", "runs/t", "--images", "data/test/images", "--output", "o", cwd=project)
    assert code == 4, text
    one_error_line(text, "model.json")
    assert expected in text and "train again" in text, text
    unchanged(before, project)
    assert not (project / "o").exists()


@pytest.mark.parametrize(
    "damage, expected",
    [
        (truncate, "not a readable flexseg resume state"),
        (lambda p: p.write_text(json.dumps({**json.loads(p.read_text()), "epoch": -1})), "epoch"),
        # a state naming a file outside resume/ is not followed
        (
            lambda p: p.write_text(json.dumps({**json.loads(p.read_text()), "weights": "../../t.yaml"})),
            "weights",
        ),
    ],
)
def test_a_damaged_resume_state_is_a_run_error(project, damage, expected):
    damage(project / "runs" / "t" / "resume" / "state.json")
    before = digest(project)
    code, text = flexseg("train", "t.yaml", "--resume", cwd=project)
    assert code == 4, text
    one_error_line(text, "state.json")
    assert expected in text and "--force" in text, text
    unchanged(before, project)
