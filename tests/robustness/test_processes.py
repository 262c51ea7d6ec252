"""Trustworthy outputs, tested as they happen in life: every case runs the real `flexseg` as a
separate process (real signals, real kills, real files, two processes at once) and asserts the
exit code, that the culprit is named, that no traceback is printed, and that every file that
existed before is byte-for-byte the same afterwards (flexseg's own lock file aside)."""

from __future__ import annotations

import hashlib
import json
import shutil
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from tests.conftest import TWO_CLASS_EXPERIMENT, read_record, set_options, write_record

FLEXSEG = Path(sys.executable).with_name("flexseg")
COMMAND = [str(FLEXSEG)] if FLEXSEG.exists() else [sys.executable, "-m", "flexseg.cli"]
EXPERIMENT = {**TWO_CLASS_EXPERIMENT, "augment": {"copies": 2, "transforms": [{"HorizontalFlip": {"p": 0.5}}]}}
# a run that takes long enough to be interrupted after its first epoch
LONG = ["--set", "train.epochs=300", "--set", "image.width=128", "--set", "image.height=128"]


def flexseg(*args, cwd: Path, timeout: float = 240, check_traceback: bool = True, **popen) -> tuple[int, str]:
    proc = subprocess.run(
        [*COMMAND, *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        **popen,
    )
    text = proc.stdout + proc.stderr
    if check_traceback:
        assert "Traceback" not in text, text
        assert "unexpected" not in text, text
    return proc.returncode, text


def start(*args, cwd: Path, **popen) -> subprocess.Popen:
    return subprocess.Popen(
        [*COMMAND, *map(str, args)],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        **popen,
    )


def finish(proc: subprocess.Popen, timeout: float = 120) -> tuple[int, str]:
    try:
        text, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail(f"flexseg did not end within {timeout}s (hung)")
    assert "Traceback" not in text, text
    return proc.returncode, text


def wait_for(condition, timeout: float = 120, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc is not None and proc.poll() is not None:
            pytest.fail(
                f"the process ended (rc {proc.returncode}) before the moment the test waits for: "
                f"{proc.communicate()[0]}"
            )
        if time.monotonic() > deadline:
            pytest.fail("timed out waiting")
        time.sleep(0.1)


def digest(*folders: Path) -> dict[str, str]:
    """SHA-256 of every file below the folders, flexseg's lock files left out (they name the last holder)."""
    return {
        str(p): hashlib.sha256(p.read_bytes()).hexdigest()
        for folder in folders
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != ".flexseg.lock"
    }


def unchanged(before: dict[str, str], *folders: Path) -> None:
    after = digest(*folders)
    changed = [k for k in before if after.get(k) != before[k]]
    assert not changed, f"changed or deleted: {changed[:5]}"


def first_train_image(project: Path) -> Path:
    return sorted((project / "data" / "train" / "images").iterdir())[0]


def truncate(path: Path, keep: int = 200) -> None:
    path.write_bytes(path.read_bytes()[:keep])


# ---------------------------------------------------------------- data loss


def test_infer_never_writes_into_its_images_folder(project):
    images = project / "data" / "test" / "images"
    before = digest(project)
    for output in (images, images / "masks-here"):
        code, text = flexseg(
            "infer", "--model", "runs/t", "--images", images, "--output", output, "--force", cwd=project
        )
        assert code == 4, text
        assert "never writes into its inputs" in text and str(images) in text
    unchanged(before, project)
    assert not (images / "masks-here").exists()


def test_infer_force_replaces_only_masks_flexseg_wrote(project):
    out = project / "masks-out"
    assert flexseg("infer", "--model", "runs/t", "--images", "data/test/images", "--output", out, cwd=project)[0] == 0
    mine = out / "s99.png"  # a user's file in the output folder, and one with the name of a mask
    mine.write_bytes(b"user data")
    victim = sorted(out.glob("*.png"))[0]
    write_record(out, [name for name in read_record(out) if name != victim.name])
    victim.write_bytes(b"a user's file that happens to have a mask's name")
    before = digest(project)
    code, text = flexseg(
        "infer", "--model", "runs/t", "--images", "data/test/images", "--output", out, "--force", cwd=project
    )
    assert code == 4, text
    assert victim.name in text and "not written by flexseg" in text
    unchanged(before, project)
    victim.unlink()
    code, text = flexseg(
        "infer", "--model", "runs/t", "--images", "data/test/images", "--output", out, "--force", cwd=project
    )
    assert code == 0, text
    assert mine.read_bytes() == b"user data"


def test_train_force_failing_leaves_the_previous_run(project):
    """A corrupt training image: exit 3 naming it, every time, and the last good model is still there."""
    bad = first_train_image(project)
    truncate(bad)
    before = digest(project)
    code, text = flexseg("train", "t.yaml", "--force", cwd=project)
    assert code == 3, text
    assert bad.name in text and "not a readable image" in text
    unchanged(before, project)


def test_corrupt_image_mid_stream_still_exits_3(project):
    """The same file corrupted only after the pre-training check passed (inside tf.data): exit 3, no abort, no hang."""
    from flexseg.data import audit

    assert audit.check_pairs  # the check exists; here it is bypassed by corrupting the file after it ran
    bad = first_train_image(project)
    data = bad.read_bytes()
    proc = start("train", "t.yaml", "--force", *LONG, cwd=project)
    wait_for(lambda: (project / "runs/t/.flexseg-staging/experiment.yaml").exists(), proc=proc)
    truncate(bad)
    code, text = finish(proc)
    bad.write_bytes(data)
    assert code == 3, text
    assert bad.name in text


def test_train_force_keeps_files_flexseg_did_not_write(project):
    run = project / "runs" / "t"
    user_files = {
        run / "my notes.txt": b"notes",
        run / "export" / "mine.onnx": b"onnx",
        run / "resume" / "keep.txt": b"k",
        run / "evaluate" / "x.csv": b"x",
        run / "tensorboard" / "t.txt": b"t",
    }
    for path, data in user_files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    old_model = (run / "model.keras").read_bytes()
    code, text = flexseg("train", "t.yaml", "--force", "--set", "train.seed=5", cwd=project)
    assert code == 0, text
    assert all(path.read_bytes() == data for path, data in user_files.items())
    assert (run / "model.keras").read_bytes() != old_model
    assert not (run / ".flexseg-staging").exists()


def demo_paths(project: Path, **keys) -> list[str]:
    raw = project / "demo-raw"
    return set_options(split__images=raw / "images", split__masks=raw / "masks", **keys)


def test_demo_refuses_a_real_split_and_a_real_run(project):
    before = digest(project)
    demo = Path(__file__).resolve().parents[2] / "experiments" / "demo.yaml"
    code, text = flexseg(
        "demo",
        demo,
        *demo_paths(project, data__root=project / "data", run_dir=project / "x"),
        cwd=project,
    )
    assert code == 4, text
    assert "data.root" in text and "did not make" in text
    code, text = flexseg(
        "demo",
        demo,
        *demo_paths(project, data__root=project / "demo-data", run_dir=project / "runs/t"),
        cwd=project,
    )
    assert code == 4, text
    assert "run_dir" in text and "'t'" in text
    unchanged(before, project)
    assert sorted(digest(project)) == sorted(before)  # and nothing new: not even the demo's raw folder


def test_export_never_writes_into_a_run_or_over_a_foreign_model_json(project):
    other = project / "runs" / "other"
    shutil.copytree(project / "runs" / "t", other)
    foreign = project / "elsewhere"
    foreign.mkdir()
    (foreign / "model.json").write_text("{}")
    before = digest(project)
    for output in (other, project / "runs" / "t"):
        code, text = flexseg("export", "runs/t", "--format", "savedmodel", "--output", output, cwd=project)
        assert code == 4, text
        assert "is a run folder" in text
    code, text = flexseg("export", "runs/t", "--format", "tflite", "--output", foreign, cwd=project)
    assert code == 4, text
    assert "model.json" in text and "not written by flexseg" in text
    unchanged(before, project)


# ---------------------------------------------------------------- signals


def _interrupt_after_first_epoch(project: Path, sig: int, **popen) -> tuple[int, str, float]:
    proc = start("train", "t.yaml", "--force", *LONG, cwd=project, **popen)
    wait_for(lambda: (project / "runs/t/.flexseg-staging/resume/state.json").exists(), proc=proc)
    time.sleep(0.3)
    t0 = time.monotonic()
    proc.send_signal(sig)
    code, text = finish(proc, timeout=60)
    return code, text, time.monotonic() - t0


def test_ctrl_c_stops_training_saves_and_says_so(project):
    before = digest(project / "runs")
    code, text, seconds = _interrupt_after_first_epoch(project, signal.SIGINT)
    assert code == 130, text
    assert "SIGINT" in text and "--resume" in text and "earlier run is untouched" in text
    assert seconds < 30
    unchanged(before, project / "runs")  # the earlier run is as it was; the new one waits in the staging folder
    state = json.loads((project / "runs/t/.flexseg-staging/resume/state.json").read_text())
    assert state["epoch"] >= 1 and not state["finished"]


def test_sigterm_stops_training_with_143(project):
    code, text, seconds = _interrupt_after_first_epoch(project, signal.SIGTERM)
    assert code == 143, text
    assert "SIGTERM" in text and "--resume" in text
    assert seconds < 30


def test_sigint_works_even_when_the_parent_ignored_it(project):
    """A job started in the background of a script inherits SIGINT as ignored."""

    def ignore_sigint():
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    code, text, _ = _interrupt_after_first_epoch(project, signal.SIGINT, preexec_fn=ignore_sigint)
    assert code == 130, text


@pytest.mark.slow
def test_interrupted_force_run_resumes_and_then_replaces_the_old(project):
    code, text, _ = _interrupt_after_first_epoch(project, signal.SIGINT)
    assert code == 130, text
    saved = json.loads((project / "runs/t/.flexseg-staging/resume/state.json").read_text())["epoch"]
    code, text = flexseg("train", "t.yaml", *LONG[2:], "--set", f"train.epochs={saved + 1}", "--resume", cwd=project)
    assert code == 0, text
    card = json.loads((project / "runs/t/model.json").read_text())
    assert card["width"] == 128 and card["training"]["epochs_run"] == saved + 1
    assert not (project / "runs/t/.flexseg-staging").exists()


@pytest.mark.slow
def test_resume_refuses_another_experiment(project):
    code, text, _ = _interrupt_after_first_epoch(project, signal.SIGINT)
    assert code == 130, text
    before = digest(project / "runs")
    code, text = flexseg(
        "train",
        "t.yaml",
        *LONG[:2],
        "--set",
        "image.width=64",
        "--set",
        "image.height=128",
        "--set",
        "train.loss=dice",
        "--resume",
        cwd=project,
    )
    assert code == 4, text
    assert "image.width: 128 → 64" in text and "train.loss" in text
    unchanged(before, project / "runs")


@pytest.mark.slow
def test_sigkill_during_training_leaves_the_old_run_and_a_resumable_new_one(project):
    before = digest(project / "runs")
    proc = start("train", "t.yaml", "--force", *LONG, cwd=project)
    wait_for(lambda: (project / "runs/t/.flexseg-staging/resume/state.json").exists(), proc=proc)
    proc.kill()
    proc.communicate()
    unchanged(before, project / "runs")
    code, text = flexseg("train", "t.yaml", *LONG, cwd=project)
    assert code == 4 and "unfinished run" in text and "--resume" in text, text


# ---------------------------------------------------------------- two at once


@pytest.mark.slow
def test_two_trains_into_one_run_folder(project):
    first = start("train", "t.yaml", "--force", *LONG, cwd=project)
    wait_for(lambda: (project / "runs/t/.flexseg-staging").exists(), proc=first)
    code, text = flexseg("train", "t.yaml", "--force", cwd=project)
    assert code == 4, text
    assert "in use by flexseg train" in text and f"pid {first.pid}" in text
    code, text = flexseg("evaluate", "t.yaml", cwd=project)  # evaluate writes into the run folder too
    assert code == 4 and "in use by flexseg train" in text, text
    first.send_signal(signal.SIGINT)
    assert finish(first)[0] == 130


def test_two_infers_into_one_output_folder(project):
    many = project / "many"
    many.mkdir()
    big = cv2.resize(cv2.imread(str(sorted((project / "raw" / "images").iterdir())[0])), (1024, 1024))
    for i in range(20):  # tiled with TTA: minutes of work, so the first is surely still running
        cv2.imwrite(str(many / f"m{i:03d}.png"), big)
    first = start("infer", "--model", "runs/t", "--images", many, "--output", "out", "--tiles", "--tta", cwd=project)
    wait_for(lambda: (project / "out" / ".flexseg.lock").exists(), proc=first)
    code, text = flexseg("infer", "--model", "runs/t", "--images", many, "--output", "out", "--force", cwd=project)
    assert code == 4, text
    assert "in use by flexseg infer" in text and f"pid {first.pid}" in text
    assert first.poll() is None  # the refusal was not a finished run's "already holds"
    first.send_signal(signal.SIGINT)
    code, text = finish(first)
    assert code == 130, text


def test_a_lock_left_by_a_killed_process_is_taken_over(project):
    proc = start("train", "t.yaml", "--force", *LONG, cwd=project)
    wait_for(lambda: (project / "runs/t/.flexseg-staging").exists(), proc=proc)
    proc.kill()
    proc.communicate()
    code, text = flexseg("evaluate", "t.yaml", cwd=project)
    assert code == 0, text


# ---------------------------------------------------------------- killed commands


def test_killed_augment_never_leaves_a_partial_set(project):
    train_dir = project / "data" / "train"
    images = train_dir / "images"
    originals = sorted(images.iterdir())
    for i in range(300):  # enough work to be killed in the middle of
        shutil.copyfile(originals[i % len(originals)], images / f"x{i:03d}.png")
        shutil.copyfile(train_dir / "masks" / originals[i % len(originals)].name, train_dir / "masks" / f"x{i:03d}.png")
    before = digest(project / "data")
    proc = start("augment", "t.yaml", "--set", "augment.copies=20", cwd=project)
    wait_for(lambda: len(list((train_dir / ".flexseg-staging" / "images").glob("*"))) > 50, proc=proc)
    proc.kill()
    proc.communicate()
    unchanged(before, project / "data")
    assert not [p for p in images.iterdir() if "__aug" in p.name]  # no copy reached the split
    code, text = flexseg("augment", "t.yaml", cwd=project)
    assert code == 0, text
    assert "removed the unfinished result" in text
    record = json.loads((train_dir / "augment.json").read_text())
    assert record["written"] == len([p for p in images.iterdir() if "__aug" in p.name]) == record["sources"] * 2


@pytest.mark.slow
def test_killed_export_force_leaves_the_old_export(project):
    assert flexseg("export", "runs/t", "--format", "savedmodel", cwd=project)[0] == 0
    export = project / "runs/t/export/savedmodel"
    before = digest(export)
    proc = start("export", "runs/t", "--format", "savedmodel", "--force", cwd=project)
    wait_for(lambda: (export / ".flexseg-staging").exists(), proc=proc)
    proc.kill()
    proc.communicate()
    unchanged(before, export)
    code, text = flexseg("export", "runs/t", "--format", "savedmodel", "--force", cwd=project)
    assert code == 0, text
    assert "removed the unfinished result" in text
    assert not (export / ".flexseg-staging").exists()


@pytest.mark.slow
def test_leftovers_of_a_killed_split_are_cleaned_and_mentioned(project):
    """SIGKILL at several moments of a split --force, the last near the swap: every time a whole
    split stands at data/ (old or new, never neither), and the next split cleans what was left."""
    raw = project / "raw"
    for i in range(24, 400):
        shutil.copyfile(raw / "images" / f"s{i % 24:02d}.png", raw / "images" / f"s{i:03d}.png")
        shutil.copyfile(raw / "masks" / f"s{i % 24:02d}.png", raw / "masks" / f"s{i:03d}.png")
    assert flexseg("split", "t.yaml", "--force", cwd=project)[0] == 0
    t0 = time.monotonic()
    assert flexseg("split", "t.yaml", "--force", cwd=project)[0] == 0
    whole = time.monotonic() - t0
    for fraction in (0.5, 0.9, 1.0):
        proc = start("split", "t.yaml", "--force", cwd=project)
        time.sleep(whole * fraction)
        proc.kill()
        proc.communicate()
        manifest = json.loads((project / "data" / "split.json").read_text())
        assert sum(manifest["counts"].values()) == 400
        left = [p.name for p in project.iterdir() if p.name.startswith(".data.")]
        code, text = flexseg("split", "t.yaml", "--force", cwd=project)
        assert code == 0, text
        assert ("interrupted flexseg split" in text) == bool(left)
        assert not [p for p in project.iterdir() if p.name.startswith(".data.")]


# ---------------------------------------------------------------- silent wrong answers


def test_mask_of_another_size_is_refused_in_train_and_evaluate(project):
    for split, command in (("train", "train"), ("test", "evaluate")):
        mask = sorted((project / "data" / split / "masks").iterdir())[0]
        data = mask.read_bytes()
        cv2.imwrite(str(mask), np.zeros((48, 64), np.uint8))
        before = digest(project)
        code, text = flexseg(command, "t.yaml", *(["--force"] if command == "train" else []), cwd=project)
        assert code == 3, text
        assert mask.name in text and "not a pair" in text
        unchanged(before, project)
        mask.write_bytes(data)


def test_transparent_mask_is_refused_with_a_hint(project):
    mask = project / "raw" / "masks" / "s00.png"
    rgba = np.full((64, 64, 4), 255, np.uint8)
    rgba[..., 3] = 0  # transparent white background
    cv2.imwrite(str(mask), rgba)
    before = digest(project)
    code, text = flexseg("split", "t.yaml", "--force", cwd=project)
    assert code == 3, text
    assert "s00.png" in text and "transparent" in text and "flatten" in text.lower()
    unchanged(before, project)


def test_more_classes_than_a_mask_holds(project, tmp_path):
    exp = dict(EXPERIMENT, classes=[{"name": f"c{i}", "color": [i % 256, i // 256, 0]} for i in range(300)])
    (tmp_path / "many.yaml").write_text(yaml.safe_dump(exp))
    code, text = flexseg("check", tmp_path / "many.yaml", cwd=tmp_path)
    assert code == 2 and "300 classes" in text and "at most 256" in text, text
    config = tmp_path / "seed" / "train_eval_infer.config"
    config.parent.mkdir()
    rgb_map = "{" + ", ".join(f"({i % 256},{i // 256},0):{i}" for i in range(300)) + "}"
    config.write_text(f"[model]\nnum_classes = 300\nimage_width = 64\nimage_height = 64\n[mask]\nrgb_map = {rgb_map}\n")
    code, text = flexseg("import-config", config, cwd=tmp_path)
    assert code == 2 and "at most 256" in text, text
    assert not (tmp_path / "seed" / "experiment.yaml").exists()


def test_dangling_link_among_the_images_is_named(project):
    link = project / "data" / "test" / "images" / "gone.png"
    link.symlink_to(project / "nowhere.png")
    code, text = flexseg("infer", "--model", "runs/t", "--images", link.parent, "--output", "o", cwd=project)
    assert code == 3 and "gone.png" in text and "missing file" in text, text
    # one rule for every unreadable input: the others get their masks (test_trust.py has the rest)
    assert {p.name for p in (project / "o").glob("*.png")} == {p.name for p in link.parent.iterdir()} - {"gone.png"}
    raw_link = project / "raw" / "images" / "gone.png"
    raw_link.symlink_to(project / "nowhere.png")
    code, text = flexseg("split", "t.yaml", "--force", cwd=project)
    assert code == 3 and "gone.png" in text, text


@pytest.mark.parametrize(
    "damage, expected",
    [
        (
            {"class_names": ["background", "fg", "extra"], "class_colors": [[0, 0, 0], [255, 255, 255], [255, 0, 0]]},
            "gives 2 classes",
        ),
        ({"class_colors": [[0, 0, 0], [300, 255, 255]]}, "less than or equal to 255"),
        ({"width": 0}, "width"),
    ],
)
def test_model_json_that_disagrees_with_the_model(project, damage, expected):
    card = project / "runs" / "t" / "model.json"
    card.write_text(json.dumps({**json.loads(card.read_text()), **damage}))
    before = digest(project)
    code, text = flexseg("infer", "--model", "runs/t", "--images", "data/test/images", "--output", "o", cwd=project)
    assert code == 4, text
    assert "model.json" in text and expected in text
    unchanged(before, project)


def test_fail_under_nan_is_refused(project):
    code, text = flexseg(
        "evaluate",
        "t.yaml",
        "--pred",
        "data/test/masks",
        "--truth",
        "data/test/masks",
        "--output",
        "scores",
        "--fail-under",
        "dice=nan",
        cwd=project,
    )
    assert code == 2 and "dice=nan" in text and "finite" in text, text


def test_duplicate_keys_are_refused_with_the_line(project):
    (project / "dup.yaml").write_text((project / "t.yaml").read_text() + "train: {epochs: 5}\n")
    code, text = flexseg("check", "dup.yaml", cwd=project)
    assert code == 2 and "given twice" in text and "'train'" in text and "line" in text, text
    config = project / "seed.config"
    config.write_text("[model]\nnum_classes = 2\nnum_classes = 3\n[mask]\nrgb_map = {(0,0,0):0, (255,255,255):1}\n")
    code, text = flexseg("import-config", config, "-o", project / "imported.yaml", cwd=project)
    assert code == 2 and "num_classes" in text and "already exists" in text, text


# ---------------------------------------------------------------- resource limits


def _png_of_zeros(path: Path, width: int, height: int) -> None:
    """A valid grey PNG of any size, streamed: the file is small, the decoded image is not."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    compressor, row, parts = zlib.compressobj(9), b"\0" * (width + 1), []
    for _ in range(height):
        parts.append(compressor.compress(row))
    parts.append(compressor.flush())
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
        + chunk(b"IDAT", b"".join(parts))
        + chunk(b"IEND", b"")
    )


def _peak_rss_mb(*args, cwd: Path) -> tuple[int, str, float]:
    """Run flexseg in a child of a small Python parent that reports the child's peak RSS."""
    probe = (
        "import resource, subprocess, sys\n"
        "p = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "sys.stdout.write(p.stdout + p.stderr)\n"
        "print('PEAK', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
        "sys.exit(p.returncode)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe, *COMMAND, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=300
    )
    text = proc.stdout + proc.stderr
    assert "Traceback" not in text and "unexpected" not in text, text
    return proc.returncode, text, int(text.rsplit("PEAK", 1)[1].split()[0]) / 1024


def test_a_decompression_bomb_is_refused_in_bounded_memory(project):
    folder = project / "big"
    folder.mkdir()
    _png_of_zeros(folder / "huge.png", 20000, 20000)
    assert (folder / "huge.png").stat().st_size < 1_000_000
    for extra in ((), ("--tiles",)):
        code, text, peak = _peak_rss_mb(
            "infer", "--model", "runs/t", "--images", folder, "--output", "o", "--force", *extra, cwd=project
        )
        assert code == 3, text
        assert "huge.png" in text and "over the limit" in text
        assert peak < 2000, f"peak RSS {peak:.0f} MB"
    shutil.copyfile(folder / "huge.png", project / "raw" / "images" / "s00.png")
    code, text = flexseg("split", "t.yaml", "--force", cwd=project)
    assert code == 3 and "s00.png" in text and "over the limit" in text, text


def test_yaml_bombs_are_refused_quickly_with_a_short_message(project):
    anchors = "a0: &a0 [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]\n" for i in range(1, 9)
    )
    base = yaml.safe_dump({k: v for k, v in EXPERIMENT.items() if k != "augment"})
    (project / "aliases.yaml").write_text(base + anchors)
    (project / "deep.yaml").write_text(base + "x: " + "[" * 500 + "]" * 500 + "\n")
    (project / "transform.yaml").write_text(base + anchors + "augment: {transforms: [{HorizontalFlip: {p: *a8}}]}\n")
    for name in ("aliases.yaml", "deep.yaml", "transform.yaml"):
        t0 = time.monotonic()
        code, out, peak = _peak_rss_mb("check", name, cwd=project)
        assert code == 2, out
        assert len(out) < 1000 and (time.monotonic() - t0) < 30 and peak < 500, (len(out), peak)


def test_seed_out_of_range_is_refused_by_check(project):
    for value in ("4294967296", "-1"):
        code, text = flexseg("check", "t.yaml", "--set", f"train.seed={value}", cwd=project)
        assert code == 2 and "train.seed" in text, text


def test_a_huge_literal_in_an_ignored_seed_key(project):
    config = project / "seed.config"
    config.write_text(
        "[model]\nnum_classes = 2\n[mask]\nrgb_map = {(0,0,0):0, (255,255,255):1}\n"
        "[train]\nunused = [" + "1," * 3_000_000 + "]\n"
    )
    code, text, peak = _peak_rss_mb("import-config", config, "-o", "x.yaml", cwd=project)
    assert code == 2 and "seed.config" in text and len(text) < 1000, text
    assert peak < 500, peak


def test_brackets_in_paths_print_as_they_are(project):
    odd = project / "data[/]x [bold]"
    code, text = flexseg("split", "t.yaml", "--output", odd, cwd=project)
    assert code == 0, text
    assert "[bold]" in text and "[/]x" in text
    assert (odd / "split.json").exists()


def test_temporary_files_of_a_killed_train_are_cleaned_and_mentioned(project):
    """What SIGKILL leaves in the middle of writing: a model under its temporary name, a half-saved
    resume checkpoint. The next command that opens the run folder removes them and says so; a
    user's file that only looks similar stays."""
    run = project / "runs" / "t"
    leftovers = [
        run / ".model.k2j3h4g5.tmp.keras",
        run / "resume" / ".partial-epoch_004.weights.h5",
        run / ".train_losses.q1w2e3r4.tmp.csv",
    ]
    for path in leftovers:
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(b"half")
    lookalike = run / ".model.tmp.keras.bak"
    lookalike.write_bytes(b"mine")
    code, text = flexseg("evaluate", "t.yaml", cwd=project)
    assert code == 0, text
    assert "removed 3 temporary file(s)" in text
    assert not any(p.exists() for p in leftovers)
    assert lookalike.read_bytes() == b"mine"
