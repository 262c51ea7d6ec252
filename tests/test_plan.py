"""flexseg plan: the class colours of damaged masks, each planning rule on small synthetic
fingerprints, the fingerprint of real folders, and the commented experiment it writes."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from flexseg.commands.plan import PLANNED_MARK, parse_budget, plan
from flexseg.config import commented_experiment_yaml, load_experiment, parse_yaml
from flexseg.errors import ConfigError, DataError, RunError
from flexseg.planning import rules
from flexseg.planning.colours import count_colors, find_classes, find_classes_in
from flexseg.planning.fingerprint import Fingerprint, take_fingerprint
from tests.conftest import KNEE_RAW, NBM_MINI

needs_knee = pytest.mark.skipif(not KNEE_RAW.is_dir(), reason="needs ../shared/datasets/kneebones3dify-raw")
needs_nbm = pytest.mark.skipif(not NBM_MINI.is_dir(), reason="needs ../shared/datasets/nbm-mini")

COLOURS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)]


def jpeg_masks(colours: list, count: int = 10, quality: int = 75, seed: int = 0, side: int = 128) -> list[np.ndarray]:
    """Masks of discs in ``colours`` on black, ``side`` pixels square, saved as JPEG and read back (RGB)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        mask = np.zeros((side, side, 3), np.uint8)
        for colour in colours:
            centre = tuple(int(v) for v in rng.integers(side // 6, side - side // 6, 2))
            cv2.circle(mask, centre, int(rng.integers(side // 21, side // 7)), colour, -1)
        ok, data = cv2.imencode(".jpg", mask[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
        out.append(cv2.imdecode(data, cv2.IMREAD_COLOR)[..., ::-1])
    return out


# ---------------------------------------------------------------- class colours


def near(found: list, wanted: list, within: int = 8) -> bool:
    """The same number of colours, each found one within ``within`` per channel of a wanted one."""
    return len(found) == len(wanted) and all(
        min(max(abs(a - b) for a, b in zip(f, w)) for w in wanted) <= within for f in found
    )


@pytest.mark.parametrize("seed", [0, 13])
@pytest.mark.parametrize("quality", [95, 30])
def test_jpeg_damaged_colour_masks_give_exactly_their_classes(seed, quality):
    for n in (1, 3, 4):
        masks = jpeg_masks(COLOURS[:n], quality=quality, seed=seed)
        colours, counts = count_colors(masks)
        assert len(colours) > 100  # the damage: hundreds of colours for a few classes
        found = find_classes_in(masks)
        assert found.colors[0] == (0, 0, 0)
        assert sorted(found.colors[1:]) == sorted(COLOURS[:n]), (n, found.colors)
        assert 0 < found.inexact_pixels and found.far_pixels <= found.inexact_pixels < 0.3 * found.total_pixels


@pytest.mark.parametrize("quality", [75, 30])
def test_jpeg_damaged_grey_levels_give_exactly_their_classes(quality):
    greys = [(85, 85, 85), (170, 170, 170), (255, 255, 255)]
    masks = [m.mean(axis=-1, keepdims=True).repeat(3, -1).astype(np.uint8) for m in jpeg_masks(greys, quality=quality)]
    found = find_classes_in(masks)
    assert found.colors[0] == (0, 0, 0) and near(found.colors[1:], greys)


def test_colours_mixed_along_an_edge_are_not_a_class():
    mask = np.zeros((64, 64, 3), np.uint8)
    mask[:, :32] = (255, 0, 0)
    mask[:, 32:] = (0, 255, 0)
    mask[:, 31:33] = (128, 128, 0)  # a two-pixel line of the mixed colour: as many pixels as a 8×16 region
    found = find_classes_in([mask])
    assert sorted(found.colors) == [(0, 255, 0), (255, 0, 0)]
    assert find_classes(*count_colors([mask])).colors != found.colors  # without the interior test it would be one


def test_grey_jpeg_masks_give_two_classes_and_count_far_pixels():
    masks = [m.mean(axis=-1, keepdims=True).repeat(3, -1).astype(np.uint8) for m in jpeg_masks([(255, 255, 255)])]
    masks[0][:4, :4] = 128  # far from black and white
    found = find_classes_in(masks)
    assert found.colors == [(0, 0, 0), (255, 255, 255)]
    assert found.far_pixels >= 16


def test_a_ramp_is_not_a_class_but_a_small_flat_region_is():
    ramp = np.tile(np.linspace(0, 255, 128).astype(np.uint8), (128, 1))
    mask = np.zeros((128, 128, 3), np.uint8)
    mask[:64, :, 0] = ramp[:64]  # a red ramp over half the mask: no colour in it is a peak
    mask[100:104, 100:104] = (0, 0, 255)  # 16 flat pixels: a small class
    found = find_classes_in([mask])
    assert found.colors == [(0, 0, 0), (0, 0, 255)]


# ---------------------------------------------------------------- rules on synthetic fingerprints


def fingerprint(**changes) -> Fingerprint:
    base = dict(
        images="/raw/images",
        masks="/raw/masks",
        kind="images",
        pairs=40,
        samples=40,
        pairing={"rule": "stem", "image_pattern": None, "tried": {"stem": "pairs all 40"}},
        size={"median": [512, 512], "min": [512, 512], "max": [512, 512]},
        channels=1,
        modality="image",
        intensity={},
        classes={
            "colors": [[0, 0, 0], [255, 255, 255]],
            "pixel_shares": [0.95, 0.05],
            "distinct_colors": 40,
            "far_pixels": 0,
            "total_pixels": 1000,
            "tolerance": 60.0,
            "masks_read": 40,
        },
        groups={"how": "file name", "pattern": "^(p\\d+)_", "count": 10},
    )
    base.update(changes)
    return Fingerprint(**base)


def test_classes_are_named_with_the_background_first():
    chosen = rules.classes(fingerprint()).value
    assert chosen == [{"name": "background", "color": [0, 0, 0]}, {"name": "class_1", "color": [255, 255, 255]}]
    volumes = fingerprint(
        kind="volumes", classes={"labels": [0, 1, 3], "pixel_shares": [0.9, 0.05, 0.05], "volumes_read": 2}
    )
    choice = rules.classes(volumes)
    assert [c["name"] for c in choice.value] == ["background", "class_1", "class_2", "class_3"]
    assert len({tuple(c["color"]) for c in choice.value}) == 4 and "labels 2 are absent" in choice.why


def test_channels_follow_the_images():
    assert rules.channels(fingerprint(channels=1)).value == 1
    assert rules.channels(fingerprint(channels=3)).value == 3


def test_intensity_mapping_by_modality():
    fg = {"p0.5": -100.0, "p99.5": 1500.0, "voxels": 5000}
    ct = rules.intensity(fingerprint(kind="volumes", modality="CT", intensity={"foreground_percentiles": fg}))
    assert ct.value == {"window": [700.0, 1600.0]} and "-100..1500 HU" in ct.why
    mr = rules.intensity(fingerprint(kind="volumes", modality="MR", intensity={"foreground_percentiles": fg}))
    assert mr.value == {"percentiles": [0.5, 99.5]}
    windows = [{"center": 40.0, "width": 400.0, "files": 3}]
    assert rules.intensity(fingerprint(kind="dicom", intensity={"header_windows": windows})).value == {
        "window": "header"
    }
    partly = windows + [{"none": True, "files": 1}]
    assert rules.intensity(fingerprint(kind="dicom", intensity={"header_windows": partly})).value is None
    assert rules.intensity(fingerprint()).value is None


@pytest.mark.parametrize("side,layers", [(512, 7), (256, 6), (96, 5), (64, 4), (384, 7), (1024, 8)])
def test_depth_brings_the_bottleneck_to_four_to_eight_pixels(side, layers):
    assert rules.depth(side) == layers
    if side <= 512:
        assert 4 < side / 2 ** (layers - 1) <= 8


def test_sizes_start_at_the_median_capped_and_halve_to_the_floor():
    sizes = rules.sizes(fingerprint(size={"median": [1024, 768], "min": [1, 1], "max": [1, 1]}))
    assert sizes[0][:2] == (512, 384) and sizes[-1][0] >= rules.MIN_SIZE
    for w, h, layers in sizes:
        assert w % 2 ** (layers - 1) == 0 and h % 2 ** (layers - 1) == 0
    assert [s[0] for s in sizes] == [512, 256, 128]
    small = rules.sizes(fingerprint(size={"median": [100, 90], "min": [1, 1], "max": [1, 1]}))
    assert small == [(96, 96, 5)]  # never enlarged, never halved below its own size


def test_loss_adds_dice_for_a_small_foreground():
    assert rules.loss(fingerprint()).value == "ce+dice"
    big = dict(fingerprint().classes, pixel_shares=[0.5, 0.25, 0.25])
    assert rules.loss(fingerprint(classes=big)).value == "categorical_crossentropy"


def test_split_cross_validates_small_data_with_enough_groups():
    keys = rules.split(fingerprint()).value
    assert keys["folds"] == 5 and keys["group_pattern"] == "^(p\\d+)_" and keys["ratios"]["valid"] == 0.0
    few = rules.split(fingerprint(groups={"how": "file name", "pattern": "^(p\\d+)_", "count": 4}))
    assert "folds" not in few.value and "too few" in few.why
    big = rules.split(fingerprint(samples=5000, groups={"how": "each file", "count": 5000}))
    assert "folds" not in big.value and big.value["ratios"]["train"] == 0.8
    one_patient = rules.split(fingerprint(groups={"how": "each file", "count": 40, "note": "one patient"}))
    assert "scores" in one_patient.why and "group_pattern" not in one_patient.value


def test_copies_fall_as_the_data_grow():
    assert [rules.copies(n).value for n in (20, 200, 2000)] == [4, 2, 1]


def cost_model(seconds_per_megapixel_filter: float = 0.02, batch_speedup: float = 1.0):
    """A fake machine: a step costs pixels × filters × batch, a larger batch ``batch_speedup`` faster a sample."""

    def cost(w, h, base, batch, layers):
        per_sample = w * h / 1e6 * base * seconds_per_megapixel_filter
        return per_sample * batch * (1 / batch_speedup if batch > 4 and w * h >= 65536 else 1.0)

    return cost


def test_budget_keeps_the_largest_model_that_fits():
    fp = fingerprint()
    roomy = rules.fit_budget(fp, 4 * 3600, 5, 30, 8, 4, cost_model())
    assert (roomy.width, roomy.base_filters) == (512, 16) and roomy.fits
    assert roomy.epochs * roomy.steps_per_epoch >= rules.MIN_STEPS
    tight = rules.fit_budget(fp, 15 * 60, 5, 30, 8, 4, cost_model())
    assert (tight.width, tight.base_filters) < (roomy.width, roomy.base_filters) and tight.fits
    assert tight.expected_seconds <= 15 * 60 * 1.05
    hopeless = rules.fit_budget(fp, 60, 5, 30, 8, 4, cost_model())
    assert not hopeless.fits and hopeless.width == 128 and "raise --budget" in hopeless.why


def test_budget_doubles_the_batch_only_when_it_trains_faster_here():
    fp = fingerprint()
    assert rules.fit_budget(fp, 4 * 3600, 5, 30, 8, 4, cost_model()).batch_size == 4
    assert rules.fit_budget(fp, 4 * 3600, 5, 30, 8, 4, cost_model(batch_speedup=1.5)).batch_size == 8


def test_budget_text():
    assert parse_budget("15m") == 900 and parse_budget("1h30m") == 5400 and parse_budget("90s") == 90
    for bad in ("", "15", "soon", "10s"):
        with pytest.raises(ConfigError):
            parse_budget(bad)


# ---------------------------------------------------------------- fingerprints of real folders


@needs_knee
def test_the_knee_folder_pairs_by_instance_number_not_by_last_number():
    fp = take_fingerprint(KNEE_RAW / "Data", KNEE_RAW / "GT-Masks")
    assert fp.pairing["rule"] == "instance_number"
    assert fp.pairing["tried"]["last number"] == "pairs 0 of 24"  # _12.dcm is Mask_013.png
    assert fp.kind == "dicom" and fp.modality == "MR" and fp.channels == 1
    assert fp.intensity["header_windows"][0]["files"] == 24
    assert fp.groups["how"] == "each file" and "one patient" in fp.groups["note"]


@needs_nbm
def test_the_nbm_folder_finds_two_classes_in_jpeg_damaged_masks():
    fp = take_fingerprint(NBM_MINI / "images", NBM_MINI / "masks")
    assert fp.classes["colors"] == [[0, 0, 0], [255, 255, 255]] and fp.classes["distinct_colors"] > 40
    assert 0.005 < fp.classes["pixel_shares"][1] < 0.03
    assert fp.channels == 1 and fp.pairing["rule"] == "stem"
    assert fp.groups["how"] == "each file"  # "1 (107)": the 1 is not a patient, and no name tells one


def synthetic_folder(
    root: Path, colours: list, patients: int = 8, slices: int = 3, side: int = 128
) -> tuple[Path, Path]:
    images, masks = root / "images", root / "masks"
    images.mkdir(parents=True)
    masks.mkdir(parents=True)
    damaged = jpeg_masks(colours, count=patients * slices, quality=70, side=side)
    rng = np.random.default_rng(1)
    for k, mask in enumerate(damaged):
        stem = f"p{k // slices:02d}_slice{k % slices}"
        grey = (rng.integers(0, 60, mask.shape[:2]) + mask.mean(axis=-1)).clip(0, 255).astype(np.uint8)
        cv2.imwrite(str(images / f"{stem}.png"), grey)
        cv2.imwrite(str(masks / f"{stem}.png"), mask[..., ::-1])
    return images, masks


def fake_step(raw, w, h, base, batch, layers):
    return w * h / 1e6 * base * batch * 0.02


def test_plan_writes_a_commented_experiment_that_loads(tmp_path):
    images, masks = synthetic_folder(tmp_path / "raw", COLOURS[:3])
    target = tmp_path / "experiments" / "mine.yaml"
    result = plan(images, masks, target, budget_s=1800, measure=fake_step)
    text = target.read_text()
    assert text.startswith(PLANNED_MARK) and "flexseg train" in text and "--folds" in text
    exp = load_experiment(target)
    assert [c.name for c in exp.classes] == ["background", "class_1", "class_2", "class_3"]
    assert sorted(tuple(c.color) for c in exp.classes[1:]) == sorted(COLOURS[:3])
    assert exp.split.group_pattern and exp.split.folds == 5 and exp.split.images == images.resolve()
    assert exp.image.channels == 1 and exp.train.epochs == result.fit.epochs
    record = json.loads((tmp_path / "experiments" / "mine.fingerprint.json").read_text())
    assert record["planned_by"].startswith("flexseg plan") and record["groups"]["count"] == 8
    # every key with a reason has its comment just above it
    lines = text.splitlines()
    loss_line = next(i for i, line in enumerate(lines) if line.strip().startswith("loss:"))
    assert lines[loss_line - 1].strip().startswith("#")


def test_plan_replaces_only_its_own_files(tmp_path):
    images, masks = synthetic_folder(tmp_path / "raw", COLOURS[:1])
    target = tmp_path / "mine.yaml"
    plan(images, masks, target, budget_s=1800, measure=fake_step)
    with pytest.raises(RunError, match="--force"):
        plan(images, masks, target, budget_s=1800, measure=fake_step)
    plan(images, masks, target, budget_s=3600, measure=fake_step, force=True)
    assert "60 min" in target.read_text()
    target.write_text("name: mine\n")  # the user's own file now
    with pytest.raises(RunError, match="not written by flexseg plan"):
        plan(images, masks, target, budget_s=1800, measure=fake_step, force=True)
    assert target.read_text() == "name: mine\n"
    with pytest.raises(ConfigError, match="inside the input folder"):
        plan(images, masks, images / "x.yaml", budget_s=1800, measure=fake_step)
    assert not (images / "x.yaml").exists()


def test_plan_says_what_each_pairing_rule_gave(tmp_path):
    images, masks = synthetic_folder(tmp_path / "raw", COLOURS[:1])
    next(masks.iterdir()).rename(masks / "other.png")
    (masks / "extra_99.png").write_bytes((masks / "other.png").read_bytes())
    with pytest.raises(DataError) as info:
        plan(images, masks, tmp_path / "x.yaml", budget_s=1800, measure=fake_step)
    message = str(info.value)
    for rule in ("stem:", "last number:", "natural:"):
        assert rule in message
    assert not (tmp_path / "x.yaml").exists()


def test_commented_yaml_reads_back_as_the_mapping():
    raw = {"name": "x", "train": {"epochs": 3, "loss": "dice"}, "split": {"ratios": {"train": 0.8, "test": 0.2}}}
    text = commented_experiment_yaml(raw, "a header", {"train": "why train", "train.epochs": "why " * 40})
    assert parse_yaml(text, "t") == raw
    assert "  # why why" in text and text.startswith("# a header")


@pytest.mark.slow
def test_flexseg_plan_measures_here_and_its_experiment_splits_as_it_is(tmp_path):
    """The real command, in its own process: the steps are measured on this machine, the
    experiment it writes is taken by `flexseg split`, and its errors are one line with their code."""
    from tests.robustness.test_processes import digest, flexseg, unchanged

    images, masks = synthetic_folder(tmp_path / "raw", COLOURS[:2], side=64)  # tiny models to time
    before = digest(tmp_path / "raw")
    rc, text = flexseg(
        "plan", "--images", images, "--masks", masks, "-o", "exp/mine.yaml", "--budget", "10m", "--json", cwd=tmp_path
    )
    assert rc == 0, text
    summary = json.loads(text[text.index("{") :])
    assert summary["classes"] == ["background", "class_1", "class_2"] and summary["folds"] == 5
    assert summary["image"] == [64, 64] and summary["expected_seconds"] <= 600 * 1.05
    exp = load_experiment(tmp_path / "exp" / "mine.yaml")
    assert exp.train.epochs == summary["epochs"] and exp.train.batch_size == summary["batch_size"]
    rc, text = flexseg("split", "exp/mine.yaml", cwd=tmp_path)
    assert rc == 0 and (tmp_path / "exp" / "data" / "mine" / "fold_4" / "valid" / "masks").is_dir(), text
    assert "far from" not in text  # the planned class colours fit the damaged masks
    unchanged(before, tmp_path / "raw")
    for args, code in (
        (("--budget", "soon"), 2),
        (("--force", "--budget", "10m"), 4),  # the user's own file at the output is never replaced
    ):
        (tmp_path / "exp" / "theirs.yaml").write_text("name: theirs\n")
        rc, text = flexseg("plan", "--images", images, "--masks", masks, "-o", "exp/theirs.yaml", *args, cwd=tmp_path)
        errors = [line for line in text.splitlines() if line.startswith("error:")]
        assert rc == code and len(errors) == 1 and "Traceback" not in text, text
        assert (tmp_path / "exp" / "theirs.yaml").read_text() == "name: theirs\n"
    rc, text = flexseg("plan", "--images", tmp_path / "nowhere", "--masks", masks, "-o", "x.yaml", cwd=tmp_path)
    assert rc == 3 and "nowhere" in text and not (tmp_path / "x.yaml").exists(), text


def test_ct_volumes_get_a_window_over_their_foreground_and_split_as_planned(tmp_path):
    """NIfTI volumes: CT found from air at −1000 HU, the window over the lesions' HU, one group
    per volume, label i as class i; the planned experiment splits as it is."""
    import nibabel as nib

    from flexseg.commands.split import plan_split, write_split

    images, labels = tmp_path / "raw" / "imagesTr", tmp_path / "raw" / "labelsTr"
    images.mkdir(parents=True)
    labels.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for case in range(7):
        hu = np.full((32, 32, 6), -1000.0, np.float32)
        hu[4:28, 4:28] = rng.normal(40, 10, (24, 24, 6))  # soft tissue
        label = np.zeros(hu.shape, np.uint8)
        label[10:16, 10:16, 1:5] = 1
        label[18:22, 18:22, 2:4] = 2
        hu[label == 1] = rng.normal(300, 30, int((label == 1).sum()))
        hu[label == 2] = rng.normal(900, 50, int((label == 2).sum()))
        affine = np.diag([1.0, 1.0, 3.0, 1.0])
        nib.save(nib.Nifti1Image(hu.astype(np.int16), affine), str(images / f"case_{case:03d}_0000.nii.gz"))
        nib.save(nib.Nifti1Image(label, affine), str(labels / f"case_{case:03d}.nii.gz"))
    target = tmp_path / "ct.yaml"
    result = plan(images, labels, target, budget_s=1800, measure=fake_step)
    fp = result.fingerprint
    assert fp.kind == "volumes" and fp.modality == "CT" and fp.samples == 7 * 6 and fp.groups["count"] == 7
    exp = load_experiment(target)
    centre, width = exp.volume.window
    assert 200 < centre - width / 2 < 300 and 900 < centre + width / 2 < 1100  # the lesions' HU, not the air's
    assert [c.name for c in exp.classes] == ["background", "class_1", "class_2"] and exp.split.folds == 5
    write_split(exp, plan_split(exp))
    manifest = json.loads((exp.data.root / "split.json").read_text())
    assert len(manifest["volumes"]) == 7 and manifest["volume_mapping"]["window"] == [centre, width]


@pytest.mark.skipif(not KNEE_RAW.is_dir(), reason="needs ../shared/datasets/kneebones3dify-raw")
def test_dicom_patients_become_a_groups_csv_that_split_keeps_together(tmp_path):
    import csv

    import pydicom

    from flexseg.commands.split import plan_split

    images = tmp_path / "raw" / "Data"
    images.mkdir(parents=True)
    for i, source in enumerate(sorted((KNEE_RAW / "Data").glob("*.dcm"))):
        ds = pydicom.dcmread(str(source))
        ds.PatientID = f"patient{i % 8}"
        ds.save_as(images / source.name)
    target = tmp_path / "exp" / "knee.yaml"
    result = plan(images, KNEE_RAW / "GT-Masks", target, budget_s=1800, measure=fake_step)
    assert result.groups_csv == tmp_path / "exp" / "knee.groups.csv"
    with result.groups_csv.open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 24 and {r["group"] for r in rows} == {f"patient{k}" for k in range(8)}
    exp = load_experiment(target)
    assert exp.split.groups_csv == result.groups_csv and exp.split.pairing == "instance_number"
    split = plan_split(exp)
    place_of: dict = {}
    for group, place in zip(split.groups, split.assignment):
        assert place_of.setdefault(group, place) == place  # a patient's slices in one place
    assert len(place_of) == 8


def test_the_batch_never_outgrows_the_data():
    tiny = rules.fit_budget(fingerprint(samples=3), 3600, 1, 2, 1, 4, cost_model(batch_speedup=3.0))
    assert tiny.batch_size <= 10 // 2 and tiny.steps_per_epoch >= 2
