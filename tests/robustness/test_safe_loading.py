"""Nothing a user hands flexseg is executed: YAML loads safely, models load in Keras safe mode."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from flexseg.model.store import CARD_FILE, MODEL_FILE, ModelCard


def flexseg(*args, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "flexseg.cli", *map(str, args)], capture_output=True, text=True, cwd=cwd
    )


def digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_a_yaml_python_tag_is_refused_and_not_run(tmp_path):
    marker = tmp_path / "pwned"
    exp = tmp_path / "evil.yaml"
    exp.write_text(f"name: !!python/object/apply:os.system ['touch {marker}']\n")
    before = digest(tmp_path)
    done = flexseg("check", exp)
    assert done.returncode == 2, done.stderr
    assert "evil.yaml" in done.stderr and "Traceback" not in done.stderr
    assert not marker.exists()
    assert digest(tmp_path) == before


def test_a_model_that_needs_unsafe_deserialisation_is_refused(tmp_path):
    """A run folder whose model.keras holds a Lambda layer (Python bytecode, which safe mode would
    have to run to load it): infer refuses it with exit 4, names the file and changes nothing."""
    import keras

    inputs = keras.Input((16, 16, 1))
    outputs = keras.layers.Conv2D(2, 1, activation="softmax")(keras.layers.Lambda(lambda x: x * 0.5)(inputs))
    run = tmp_path / "run"
    run.mkdir()
    keras.Model(inputs, outputs).save(run / MODEL_FILE)
    card = ModelCard(
        experiment="evil",
        class_names=["background", "x"],
        class_colors=[[0, 0, 0], [255, 255, 255]],
        width=16,
        height=16,
        channels=1,
        input_normalize=True,
    )
    (run / CARD_FILE).write_text(json.dumps(card.__dict__))
    images = tmp_path / "images"
    images.mkdir()
    from flexseg.data.io import write_image

    write_image(images / "a.png", np.zeros((16, 16), np.uint8))
    before = digest(tmp_path)
    done = flexseg("infer", "--model", run, "--images", images, "--output", tmp_path / "out")
    assert done.returncode == 4, done.stderr
    assert MODEL_FILE in done.stderr and "Traceback" not in done.stderr
    assert "unsafe" in done.stderr.lower() or "lambda" in done.stderr.lower()
    assert digest(tmp_path) == before
