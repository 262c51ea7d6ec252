"""Trust, round 2 (issue 22): names from data are never paths, flexseg's own files are never
links, deletion is by exact record entries, readers finish or refuse a half-done replacement,
memory is bounded by what a file is, and every reader error is a named data error.

Every case runs the real `flexseg` as a separate process and asserts the exit code, the culprit
named, no traceback, and that every file that existed before, inside and outside the output
folder, is byte-for-byte the same afterwards."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import KNEE_RAW, read_record
from tests.robustness.test_processes import (
    COMMAND,
    digest,
    finish,
    first_train_image,
    flexseg,
    start,
    unchanged,
    wait_for,
)

needs_knee = pytest.mark.skipif(not KNEE_RAW.is_dir(), reason="needs ../shared/datasets/kneebones3dify-raw")


def one_line_error(text: str, code: int, rc: int, *named: str) -> None:
    """The exit code, one error line naming the culprit, no traceback."""
    assert rc == code, text
    errors = [line for line in text.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, text
    assert "Traceback" not in text and "unexpected" not in text, text
    for name in named:
        assert name in errors[0], (name, text)


def knee_series(folder: Path, uid: str, count: int = 3, **changes) -> list[Path]:
    """``count`` real KneeBones3Dify slices as one series of UID ``uid``; ``changes`` set header
    elements of the first file."""
    import pydicom

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for i, source in enumerate(sorted((KNEE_RAW / "Data").glob("*.dcm"))[:count]):
        ds = pydicom.dcmread(str(source))
        ds.SeriesInstanceUID = uid
        if i == 0:
            for keyword, value in changes.items():
                if value is None:
                    delattr(ds, keyword)
                else:
                    setattr(ds, keyword, value)
        target = folder / f"{abs(hash(uid)) % 10_000}_{i}.dcm"
        ds.save_as(target)
        written.append(target)
    return written


# ---------------------------------------------------------------- writes outside the output, data loss


@needs_knee
def test_a_series_uid_is_never_a_path(project, tmp_path):
    """A SeriesInstanceUID of ../../x or an absolute path names a label volume inside --output."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("the user's")
    dicoms = tmp_path / "dicoms"
    knee_series(dicoms, "../../escaped")
    knee_series(dicoms, str(outside / "victim"))
    before = digest(project, tmp_path)
    args = ("infer", "--model", "runs/t", "--images", dicoms, "--volumes", "--dicom-seg", "--output", "masks")
    rc, text = flexseg(*args, cwd=project)
    assert rc == 0, text
    written = sorted(p.name for p in (project / "masks").iterdir() if not p.name.startswith(".flexseg"))
    stems = ["_.._.._escaped", str(outside / "victim").replace("/", "_")]
    assert written == sorted(f"{stem}{suffix}" for stem in stems for suffix in (".nii.gz", ".seg.dcm")), written
    assert sorted(p.name for p in outside.iterdir()) == ["keep.txt"]
    assert not (tmp_path / "escaped.nii.gz").exists() and not (project.parent / "escaped.nii.gz").exists()
    unchanged(before, project, tmp_path)
    assert set(read_record(project / "masks")) == set(written)


@pytest.mark.slow
def test_a_name_with_a_line_break_is_one_name(project, tmp_path):
    """x\nnotes.png among the images predicted after each epoch: it was two record lines, the second
    "notes.png", so the next train --force deleted the user's runs/t/notes.png. Now one entry (and
    a mask x_notes.png), and infer --force replaces its own mask of that image."""
    images = tmp_path / "images"
    images.mkdir()
    shutil.copy(first_train_image(project), images / "x\nnotes.png")
    shutil.copy(first_train_image(project), images / "y\u2028z\r.png")
    run = project / "runs" / "t"
    (run / "notes.png").write_bytes(b"the user's")
    before = digest(images) | {str(run / "notes.png"): digest(run)[str(run / "notes.png")]}
    train = ("train", "t.yaml", "--force", "--set", "train.num_infer_images=2", "--set", f"infer.images={images}")
    for _ in range(2):  # the second replaces the first's recorded files
        rc, text = flexseg(*train, cwd=project)
        assert rc == 0, text
    entries = read_record(run)
    assert "epoch_change_infer/epoch_001/x_notes.png" in entries and "notes.png" not in entries
    out = run / "infer" / "lines"
    for _ in range(2):
        rc, text = flexseg("infer", "--model", "runs/t", "--images", images, "--output", out, "--force", cwd=project)
        assert rc == 0, text
    assert sorted(read_record(out)) == ["x_notes.png", "y_z_.png"]
    unchanged(before, images, run)


@pytest.mark.slow
def test_a_finished_resume_removes_only_its_own_variables(project):
    """The user's resume/epoch_notes.txt survives a resumed run's end."""
    fresh = ("--set", "run_dir=runs/u", "--set", "train.epochs=5")
    proc = start("train", "t.yaml", *fresh, cwd=project)
    state = project / "runs" / "u" / "resume" / "state.json"
    wait_for(lambda: state.exists() and json.loads(state.read_text())["epoch"] >= 1, proc=proc)
    proc.send_signal(signal.SIGINT)
    assert finish(proc)[0] == 130
    (state.parent / "epoch_notes.txt").write_text("the user's")
    (state.parent / "epoch_999.variables.bak").write_text("the user's too")
    before = {k: v for k, v in digest(state.parent).items() if "user" in Path(k).read_text(errors="ignore")}
    assert len(before) == 2
    rc, text = flexseg("train", "t.yaml", "--resume", *fresh, cwd=project)
    assert rc == 0, text
    left = sorted(p.name for p in state.parent.iterdir() if p.name.startswith("epoch_"))
    assert left == ["epoch_999.variables.bak", "epoch_notes.txt"]
    unchanged(before, state.parent)


@pytest.mark.parametrize("own_file", [".flexseg.lock", ".flexseg-written"])
def test_flexseg_never_follows_a_link_in_place_of_its_own_files(project, tmp_path, own_file):
    victim = tmp_path / "victim.txt"
    victim.write_text("the user's file\n")
    out = tmp_path / "out"
    out.mkdir()
    (out / own_file).symlink_to(victim)
    before = digest(project, tmp_path)
    images = project / "data" / "test" / "images"
    rc, text = flexseg("infer", "--model", "runs/t", "--images", images, "--output", out, cwd=project)
    one_line_error(text, 4, rc, own_file, "link")
    unchanged(before, project, tmp_path)
    assert victim.read_text() == "the user's file\n"


def test_a_record_entry_through_a_linked_folder_is_never_deleted(project, tmp_path):
    """A record line linked/victim.txt, where linked points elsewhere: --force deletes nothing there."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "victim.txt").write_text("the user's")
    run = project / "runs" / "t"
    (run / "linked").symlink_to(elsewhere)
    with open(run / ".flexseg-written", "a") as f:
        f.write("linked/victim.txt\n")  # as an older record holds it, one plain path a line
    before = digest(elsewhere)
    rc, text = flexseg("train", "t.yaml", "--force", cwd=project)
    assert rc == 0, text
    split_dir = project / "data" / "train"
    (split_dir / "linked").symlink_to(elsewhere)
    with open(split_dir / ".flexseg-written", "a") as f:
        f.write("linked/victim.txt\n")
    rc, text = flexseg("augment", "t.yaml", "--force", cwd=project)
    assert rc == 0, text
    unchanged(before, elsewhere)


# ---------------------------------------------------------------- mixed runs


@pytest.mark.slow
def test_readers_finish_a_replacement_a_killed_writer_left(project):
    """SIGKILL between model.json and model.keras of a train --force roll-forward leaves B's card
    beside A's weights: export and infer finish the replacement before reading, never B's card
    with A's weights. (The state is made as the kill leaves it: the window between two renames
    is too short to hit with a signal.)"""
    run, other = project / "runs" / "t", project / "runs" / "b"
    rc, text = flexseg("train", "t.yaml", "--set", "model.base_filters=8", "--set", f"run_dir={other}", cwd=project)
    assert rc == 0, text
    models = {
        "A": ((run / "model.keras").read_bytes(), (run / "model.json").read_bytes()),  # 4 filters
        "B": ((other / "model.keras").read_bytes(), (other / "model.json").read_bytes()),  # 8 filters
    }
    images = project / "data" / "test" / "images"
    readers = {
        "export": ("export", "runs/t", "--format", "savedmodel", "--output", "exported"),
        "infer": ("infer", "--model", "runs/t", "--images", images, "--output", "out"),
    }
    for (reader, args), (old, new) in zip(readers.items(), (("A", "B"), ("B", "A"))):
        assert (run / "model.keras").read_bytes() == models[old][0]
        staging = run / ".flexseg-staging"  # the new model staged and marked complete ...
        staging.mkdir()
        (staging / "model.keras").write_bytes(models[new][0])
        (staging / ".flexseg-written").write_text(json.dumps("model.keras") + "\n" + json.dumps("model.json") + "\n")
        (staging / ".flexseg-complete").write_text(json.dumps({"replace": ["model.keras", "model.json"]}))
        (run / "model.json").write_bytes(models[new][1])  # ... and the roll-forward killed after model.json
        rc, text = flexseg(*args, cwd=project)
        assert rc == 0, (reader, text)
        assert "finishing that" in text, text
        assert (run / "model.keras").read_bytes() == models[new][0], reader
        assert (run / "model.json").read_bytes() == models[new][1], reader
        assert not staging.exists()


def test_evaluate_never_cleans_inside_an_infer_folder_another_process_holds(project):
    """Locks nest: evaluate on a run leaves infer/<name>/ (held by a running infer) alone."""
    held = project / "runs" / "t" / "infer" / "held"
    held.mkdir(parents=True)
    leftover = held / ".case.abcd1234.tmp.png"  # a name of flexseg's temporary pattern
    leftover.write_bytes(b"being written by the other infer")
    (held / ".flexseg.lock").write_text("")
    holder = subprocess.Popen(
        [str(Path(COMMAND[0]).with_name("python")), "-c", HOLD_LOCK, str(held / ".flexseg.lock")],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        rc, text = flexseg("evaluate", "t.yaml", cwd=project)
        assert rc == 0, text
        assert leftover.read_bytes() == b"being written by the other infer"
    finally:
        holder.kill()
        holder.wait()


HOLD_LOCK = (
    "import fcntl, sys, time; f = open(sys.argv[1], 'r+'); fcntl.flock(f, fcntl.LOCK_EX); "
    "print('held', flush=True); time.sleep(120)"
)


# ---------------------------------------------------------------- silent wrong answers


@needs_knee
def test_bad_dicom_headers_are_data_errors_not_empty_masks(project, tmp_path):
    """A NaN RescaleSlope, an infinite RescaleIntercept, no Rows: each file named (exit 3), no mask
    for it, and the good file beside them gets its mask."""
    dicoms = tmp_path / "dicoms"
    bad = {
        "RescaleSlope": knee_series(dicoms, "1.2.3", count=1, RescaleSlope="NaN")[0],
        "RescaleIntercept": knee_series(dicoms, "1.2.4", count=1, RescaleIntercept="inf")[0],
        "Rows": knee_series(dicoms, "1.2.5", count=1, Rows=None)[0],
    }
    (good,) = knee_series(dicoms, "1.2.6", count=1)
    before = digest(project, tmp_path)
    rc, text = flexseg("infer", "--model", "runs/t", "--images", dicoms, "--output", tmp_path / "out", cwd=project)
    one_line_error(text, 3, rc, *(p.name for p in bad.values()))
    for element, path in bad.items():
        assert any(path.name in line and element in line for line in text.splitlines()), (element, text)
    assert sorted(p.name for p in (tmp_path / "out").glob("*.png")) == [good.stem + ".png"]
    unchanged(before, project, tmp_path / "dicoms")


@needs_knee
@pytest.mark.parametrize(
    "count,changes,named",
    [
        (1, {"ImagePositionPatient": ["NaN", "0", "0"]}, "ImagePositionPatient"),
        (3, {"ImagePositionPatient": ["0", "NaN", "0"]}, "ImagePositionPatient"),
        (3, {"ImageOrientationPatient": ["0"] * 6}, "ImageOrientationPatient"),
        (3, {"Rows": None}, "Rows"),
    ],
)
def test_a_series_with_a_broken_geometry_is_named(project, tmp_path, count, changes, named):
    """NaN positions, a zero orientation or no Rows: exit 3 naming the file, never a NaN affine."""
    dicoms = tmp_path / "dicoms"
    files = knee_series(dicoms, "1.2.3", count=count, **changes)
    before = digest(project, tmp_path)
    args = ("infer", "--model", "runs/t", "--images", dicoms, "--volumes", "--output", tmp_path / "out")
    rc, text = flexseg(*args, cwd=project)
    one_line_error(text, 3, rc, files[0].name, named)
    assert not list((tmp_path / "out").glob("*.nii.gz"))
    unchanged(before, project, tmp_path / "dicoms")


def test_evaluate_pred_refuses_one_volume_twice(project, tmp_path):
    import nibabel as nib

    for kind in ("pred", "truth"):
        (tmp_path / kind).mkdir()
    labels = np.zeros((8, 8, 4), np.uint8)
    labels[2:5, 2:5, 1:3] = 1
    image = nib.Nifti1Image(labels, np.eye(4))
    nib.save(image, str(tmp_path / "pred" / "case1.nii"))
    nib.save(nib.Nifti1Image(np.zeros_like(labels), np.eye(4)), str(tmp_path / "pred" / "case1.nii.gz"))
    nib.save(image, str(tmp_path / "truth" / "case1.nii.gz"))
    before = digest(project, tmp_path)
    args = ("evaluate", "t.yaml", "--pred", tmp_path / "pred", "--truth", tmp_path / "truth")
    rc, text = flexseg(*args, "--output", tmp_path / "scores", cwd=project)
    one_line_error(text, 3, rc, "case1.nii and case1.nii.gz")
    unchanged(before, project, tmp_path)


def test_evaluate_pred_with_a_missing_truth_folder_is_a_data_error(project, tmp_path):
    import nibabel as nib

    (tmp_path / "pred").mkdir()
    nib.save(nib.Nifti1Image(np.zeros((8, 8, 4), np.uint8), np.eye(4)), str(tmp_path / "pred" / "a.nii.gz"))
    args = ("evaluate", "t.yaml", "--pred", tmp_path / "pred", "--truth", tmp_path / "nope")
    rc, text = flexseg(*args, "--output", tmp_path / "scores", cwd=project)
    one_line_error(text, 3, rc, "nope")


# ---------------------------------------------------------------- memory


def nifti_claiming(path: Path, shape: tuple[int, ...], dtype: str) -> None:
    """A small gzipped NIfTI whose header claims ``shape`` of ``dtype`` (its voxels mostly absent)."""
    import nibabel as nib

    header = nib.Nifti1Header()
    header.set_data_shape(shape)
    header.set_data_dtype(np.dtype(dtype))
    header.set_qform(np.eye(4), code=1)
    header.set_sform(np.eye(4), code=1)
    data = header.binaryblock + b"\0" * (352 - len(header.binaryblock)) + b"\0" * (1 << 20)
    path.write_bytes(gzip.compress(data))


def test_a_volume_over_the_memory_budget_is_refused_before_it_is_read(project, tmp_path):
    """1024×1024×1000 float64 (inside the voxel limit): exit 3 with the figures, in bounded memory."""
    images = tmp_path / "vols"
    images.mkdir()
    nifti_claiming(images / "huge.nii.gz", (1024, 1024, 1000), "float64")
    before = digest(project, tmp_path)
    args = ("infer", "--model", "runs/t", "--images", images, "--output", tmp_path / "out")
    rc, text = flexseg(*args, cwd=project, env={**os.environ, "FLEXSEG_MEMORY_BUDGET": "4G"})
    one_line_error(text, 3, rc, "huge.nii.gz", "GiB", "FLEXSEG_MEMORY_BUDGET")
    unchanged(before, project, tmp_path)


def test_volumes_of_complex_or_rgb_voxels_are_data_errors(project, tmp_path):
    import nibabel as nib

    images = tmp_path / "vols"
    images.mkdir()
    rgb = np.zeros((8, 8, 4), dtype=[("R", "u1"), ("G", "u1"), ("B", "u1")])
    nib.save(nib.Nifti1Image(rgb, np.eye(4)), str(images / "rgb.nii.gz"))
    nib.save(nib.Nifti1Image(np.zeros((8, 8, 4), np.complex64), np.eye(4)), str(images / "complex.nii.gz"))
    rc, text = flexseg("infer", "--model", "runs/t", "--images", images, "--output", tmp_path / "out", cwd=project)
    one_line_error(text, 3, rc, "rgb.nii.gz", "complex.nii.gz")
    for name, what in (("rgb.nii.gz", "RGB"), ("complex.nii.gz", "complex numbers")):
        assert any(name in line and what in line for line in text.splitlines()), (name, text)


# ---------------------------------------------------------------- names and error lines


def test_long_non_utf8_and_dangling_names_among_infers_images(project, tmp_path):
    """Names of 250 and 255 bytes (legal) and a Latin-1 name get masks named within 200 bytes;
    a link to a missing file is one unreadable input like any other: named, exit 3, and every
    other image still gets its mask."""
    images = tmp_path / "images"
    images.mkdir()
    for name in ("n" * 246 + ".png", "n" * 251 + ".png", os.fsdecode(b"caf\xe9.png"), "plain.png"):
        shutil.copy(first_train_image(project), images / name)
    (images / "gone.png").symlink_to(tmp_path / "missing.png")
    rc, text = flexseg("infer", "--model", "runs/t", "--images", images, "--output", tmp_path / "out", cwd=project)
    one_line_error(text, 3, rc, "gone.png")
    masks = sorted(p.name for p in (tmp_path / "out").glob("*.png"))
    assert len(masks) == 4 and "caf_.png" in masks and "plain.png" in masks, masks
    assert all(len(os.fsencode(m)) <= 200 for m in masks), masks


def test_split_augment_and_train_take_long_and_non_utf8_names(project):
    """A 255-byte name and a Latin-1 one: split names its copies within 200 bytes (room for
    __augNN), augment and train read them (tf.data gets the paths as bytes)."""
    raw = project / "raw"
    for name in (os.fsdecode(b"s\xe9.png"), "L" * 251 + ".png"):
        for kind in ("images", "masks"):
            shutil.copy(raw / kind / "s00.png", raw / kind / name)
    for command in ("split", "augment", "train"):
        rc, text = flexseg(command, "t.yaml", "--force", cwd=project)
        assert rc == 0, (command, text)
    written = [p.name for p in (project / "data").rglob("*.png")]
    assert max(len(os.fsencode(n)) for n in written) <= 200 + len("__aug00.png")  # stem + copy + suffix
    assert any(n.startswith("s_") or n.startswith(os.fsdecode(b"s\xe9")) for n in written)


def test_stats_on_thousands_of_duplicates_prints_a_short_line(project):
    """5,000 copies of a train image in the test split: the leak's error line names a few and
    counts the rest."""
    test = project / "data" / "test"
    image = first_train_image(project)
    mask = project / "data" / "train" / "masks" / image.name
    for i in range(5000):
        os.link(image, test / "images" / f"dup{i:04d}.png")
        os.link(mask, test / "masks" / f"dup{i:04d}.png")
    rc, text = flexseg("stats", "t.yaml", cwd=project, timeout=300)
    one_line_error(text, 1, rc, "the same image is in train and test", "more")
    assert max(len(line) for line in text.splitlines()) < 1200, max(len(line) for line in text.splitlines())
