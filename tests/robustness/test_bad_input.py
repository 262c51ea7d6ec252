"""Bad input through the real CLI: the exit code, one line naming the culprit, no traceback, and no
input file or earlier output modified or deleted."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from flexseg.cli import app
from tests.conftest import TWO_CLASS_EXPERIMENT, set_options, write_raw_pairs

runner = CliRunner()
GOOD = TWO_CLASS_EXPERIMENT


def digest(folder: Path) -> dict[str, str]:
    """Every file's SHA-256; flexseg's lock file is left out: each command that opens the folder
    writes its pid there."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != ".flexseg.lock"
    }


def flexseg(*args):
    result = runner.invoke(app, [str(a) for a in args])
    text = result.output
    assert "Traceback" not in text, text
    return result.exit_code, text


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """12 raw 64×64 pairs, split, and a model trained one epoch on them."""
    home = tmp_path_factory.mktemp("bad-input")
    write_raw_pairs(home, 12)
    (home / "good.yaml").write_text(yaml.safe_dump(GOOD))
    assert flexseg("split", home / "good.yaml")[0] == 0
    code, text = flexseg("train", home / "good.yaml")
    assert code == 0, text
    return home


def variant(home: Path, name: str, **changes) -> Path:
    exp = yaml.safe_load(yaml.safe_dump(GOOD))
    for dotted, value in changes.items():
        *parents, leaf = dotted.split("__")
        node = exp
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    path = home / f"{name}.yaml"
    path.write_text(yaml.safe_dump(exp))
    return path


@pytest.mark.parametrize(
    "name,changes,culprit",
    [
        ("unknown-key", {"modle": {"base_filters": 4}}, "did you mean model"),
        ("wrong-type", {"train__epochs": "ten"}, "train.epochs"),
        ("negative-epochs", {"train__epochs": -3}, "train.epochs"),
        ("not-divisible", {"image__width": 66}, "image.width=66 is not divisible"),
        ("zero-classes", {"classes": []}, "classes"),
        (
            "duplicate-colours",
            {"classes": [{"name": "a", "color": [0, 0, 0]}, {"name": "b", "color": [0, 0, 0]}]},
            "share the color",
        ),
    ],
)
def test_experiment_errors_exit_2_and_name_the_key(tmp_path, name, changes, culprit):
    path = variant(tmp_path, name, **changes)
    before = digest(tmp_path)
    code, text = flexseg("check", path)
    assert code == 2 and culprit in text and path.name in text, text
    assert digest(tmp_path) == before


def test_missing_experiment_and_yaml_syntax(tmp_path):
    code, text = flexseg("check", tmp_path / "missing.yaml")
    assert code == 2 and "missing.yaml" in text and "not found" in text
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: t\nclasses: [\n  - a\n")
    code, text = flexseg("check", broken)
    assert code == 2 and "line 3, column 3" in text


def test_a_data_path_that_does_not_exist(project):
    before = digest(project / "raw")
    code, text = flexseg("split", project / "good.yaml", "--set", "split.images=raw/nope", "--set", "data.root=data-x")
    assert code == 3 and "nope" in text
    assert digest(project / "raw") == before


def test_empty_image_folder(project, tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    code, text = flexseg(
        "split",
        project / "good.yaml",
        *set_options(split__images=tmp_path / "images", split__masks=tmp_path / "masks", data__root=tmp_path / "data"),
    )
    assert code == 3 and "no images" in text


def test_an_image_without_a_mask_and_a_mask_without_an_image(project, tmp_path):
    for kind, names in (("images", range(0, 6)), ("masks", range(1, 7))):
        (tmp_path / kind).mkdir()
        for i in names:
            shutil.copy(project / "raw" / kind / f"s{i:02d}.png", tmp_path / kind)
    before = digest(tmp_path)
    code, text = flexseg(
        "split",
        project / "good.yaml",
        *set_options(split__images=tmp_path / "images", split__masks=tmp_path / "masks", data__root=tmp_path / "data"),
    )
    assert code == 3 and "s00.png" in text and "s06.png" in text
    assert digest(tmp_path) == before and not (tmp_path / "data").exists()


def bad_folder(project: Path, folder: Path) -> None:
    """Broken files beside images of every kind flexseg must read: grey, RGBA, 16-bit, odd sizes
    and names with spaces, parentheses and non-ASCII characters."""
    folder.mkdir()
    good = cv2.imread(str(project / "raw" / "images" / "s00.png"))
    png = cv2.imencode(".png", good)[1].tobytes()
    (folder / "truncated.png").write_bytes(png[: len(png) // 2])
    jpg = cv2.imencode(".jpg", good)[1].tobytes()
    (folder / "corrupt.jpg").write_bytes(jpg[:200] + b"\0" * 50)
    (folder / "notes.png").write_text("not an image\n")
    cv2.imwrite(str(folder / "grey.png"), good[..., 0])
    cv2.imwrite(str(folder / "rgba.png"), cv2.cvtColor(good, cv2.COLOR_BGR2BGRA))
    cv2.imwrite(str(folder / "sixteen.png"), good[..., 0].astype(np.uint16) * 257)
    cv2.imwrite(str(folder / "wide one.png"), cv2.resize(good, (100, 77)))
    (folder / "paren (1) é.png").write_bytes(png)


@pytest.mark.parametrize("tiles", [False, True])
def test_unreadable_images_are_reported_and_the_others_get_masks(project, tmp_path, tiles):
    bad_folder(project, tmp_path / "in")
    before = digest(tmp_path / "in")
    code, text = flexseg(
        "infer",
        "--model",
        project / "runs" / "t",
        "--images",
        tmp_path / "in",
        "--output",
        tmp_path / "out",
        *(["--tiles"] if tiles else []),
    )
    assert code == 3, text
    for name in ("truncated.png", "corrupt.jpg", "notes.png"):
        assert name in text
    written = sorted(p.name for p in (tmp_path / "out").iterdir() if not p.name.startswith(".flexseg"))  # bookkeeping
    assert written == sorted(["grey.png", "rgba.png", "sixteen.png", "wide one.png", "paren (1) é.png"])
    assert cv2.imread(str(tmp_path / "out" / "wide one.png"), cv2.IMREAD_UNCHANGED).shape[:2] == (77, 100)
    assert digest(tmp_path / "in") == before


def test_a_dicom_without_pixel_data(project, tmp_path):
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    (tmp_path / "in").mkdir()
    ds = FileDataset(str(tmp_path / "in" / "nopix.dcm"), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.InstanceNumber = 1
    ds.save_as(tmp_path / "in" / "nopix.dcm", enforce_file_format=True)
    code, text = flexseg(
        "infer", "--model", project / "runs" / "t", "--images", tmp_path / "in", "--output", tmp_path / "out"
    )
    assert code == 3 and "nopix.dcm" in text


def test_infer_and_evaluate_before_training(project):
    before = digest(project)
    code, text = flexseg("evaluate", project / "good.yaml", "--set", "run_dir=runs/never")
    assert code == 4 and "runs/never" in text and "train" in text
    code, text = flexseg("infer", "--model", project / "runs" / "never", "--images", project / "raw" / "images")
    assert code == 4 and "never" in text
    assert digest(project) == before


def test_a_corrupt_training_image_stops_training_naming_it(project, tmp_path):
    """Raised inside the tf.data pipeline, the error still reaches the user as itself (exit 3)."""
    shutil.copytree(project / "data", tmp_path / "data")
    victim = sorted((tmp_path / "data" / "train" / "images").iterdir())[0]
    victim.write_bytes(victim.read_bytes()[:100])
    before = digest(tmp_path / "data")
    code, text = flexseg(
        "train",
        project / "good.yaml",
        "--set",
        f"data.root={tmp_path / 'data'}",
        "--set",
        f"run_dir={tmp_path / 'run'}",
    )
    assert code == 3 and victim.name in text and "not a readable image" in text and "UnknownError" not in text, text
    assert digest(tmp_path / "data") == before


def test_a_model_from_another_experiment(project):
    three = variant(project, "three", classes=GOOD["classes"] + [{"name": "x", "color": [255, 0, 0]}])
    before = digest(project / "runs" / "t")
    code, text = flexseg("evaluate", three, "--set", f"run_dir={project / 'runs' / 't'}")
    assert code == 4 and "classes" in text
    assert digest(project / "runs" / "t") == before


def test_an_existing_output_is_not_overwritten(project, tmp_path):
    images = project / "raw" / "images"
    assert flexseg("infer", "--model", project / "runs" / "t", "--images", images, "--output", tmp_path / "o")[0] == 0
    before = digest(tmp_path / "o")
    code, text = flexseg("infer", "--model", project / "runs" / "t", "--images", images, "--output", tmp_path / "o")
    assert code == 4 and "--force" in text
    assert digest(tmp_path / "o") == before
    run_before = digest(project / "runs" / "t")
    code, text = flexseg("train", project / "good.yaml")
    assert code == 4 and "already holds a run" in text and "--force" in text
    assert digest(project / "runs" / "t") == run_before


def test_an_output_path_that_is_a_file(project, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("keep me\n")
    code, text = flexseg(
        "infer",
        "--model",
        project / "runs" / "t",
        "--images",
        project / "raw" / "images",
        "--output",
        blocker / "masks",
    )
    assert code == 4 and "a-file" in text and "a file stands where a folder is needed" in text, text
    assert blocker.read_text() == "keep me\n"


def test_mask_colours_far_from_every_class_are_named(project, tmp_path):
    """Far colours are mapped to the nearest class and reported with the file that holds most of
    them: a warning, not an error (JPEG-saved masks carry noise; data.mask_tolerance sets the bar)."""
    shutil.copytree(project / "raw", tmp_path / "raw")
    mask = cv2.imread(str(tmp_path / "raw" / "masks" / "s03.png"))
    mask[10:40, 10:40] = (0, 128, 0)
    cv2.imwrite(str(tmp_path / "raw" / "masks" / "s03.png"), mask)
    before = digest(tmp_path / "raw")
    code, text = flexseg(
        "split",
        project / "good.yaml",
        "--set",
        f"split.images={tmp_path / 'raw' / 'images'}",
        "--set",
        f"split.masks={tmp_path / 'raw' / 'masks'}",
        "--set",
        f"data.root={tmp_path / 'data'}",
    )
    assert code == 0 and "s03.png" in text and "900 mask pixels" in text
    assert digest(tmp_path / "raw") == before


def test_a_full_disk_is_one_line_and_leaves_no_partial_file(project, tmp_path, monkeypatch):
    """Disk full, simulated: every mask write fails with ENOSPC."""
    import errno

    from flexseg import fsutil

    def full(path, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(fsutil, "public_mode", lambda: full(tmp_path / "out"))
    before = digest(project / "raw")
    code, text = flexseg(
        "infer", "--model", project / "runs" / "t", "--images", project / "raw" / "images", "--output", tmp_path / "out"
    )
    assert code == 4 and "No space left on device" in text and "free some space" in text, text
    assert list((tmp_path / "out").iterdir()) == []  # no temporary or partial mask left behind
    assert digest(project / "raw") == before
