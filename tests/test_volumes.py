"""3D volumes: the slice convention, whatever order a file stores its axes in, and label volumes
that come back on the input's own grid.

The expected slices are written out by hand from the convention (docs/volumes.md), not by
calling the code under test: in RAS+ storage with an identity affine, index i grows towards the
patient's Right, j towards Anterior, k towards Superior."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from flexseg.cli import app
from flexseg.data.volumes import from_display, intensity_to_uint8, to_display
from tests.conftest import CLASSES, KNEE_RAW, copy_of, tiny_experiment, write_yaml

NX, NY, NZ = 6, 5, 4
RAS = np.arange(NX * NY * NZ, dtype=np.int16).reshape(NX, NY, NZ)  # every voxel its own value
SPACING = np.diag([0.8, 0.7, 2.5, 1.0])  # anisotropic, as CT and MR are
SHIFT = np.array([[1, 0, 0, -12.0], [0, 1, 0, 30.0], [0, 0, 1, -4.0], [0, 0, 0, 1]])


def expected(plane: str) -> np.ndarray:
    """(slice, row, column) as a viewer shows them, from the RAS voxels by the convention."""
    i, j, k = np.indices((NX, NY, NZ))
    flipped = {"R": NX - 1 - i, "A": NY - 1 - j, "S": NZ - 1 - k}  # index from the other end
    axes = {  # (slice, row, column): axial S, P, L; coronal P, I, L; sagittal L, I, P
        "axial": (k, flipped["A"], flipped["R"]),
        "coronal": (flipped["A"], flipped["S"], flipped["R"]),
        "sagittal": (flipped["R"], flipped["S"], flipped["A"]),
    }[plane]
    shape = tuple(int(a.max()) + 1 for a in axes)
    out = np.empty(shape, RAS.dtype)
    out[axes] = RAS
    return out


def stored_orders() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The same patient voxels stored four ways: (data, affine)."""
    ras_affine = SHIFT @ SPACING
    lps = RAS[::-1, ::-1, :]  # i' = NX-1-i, j' = NY-1-j
    lps_affine = ras_affine @ np.array([[-1, 0, 0, NX - 1], [0, -1, 0, NY - 1], [0, 0, 1, 0], [0, 0, 0, 1.0]])
    permuted = RAS.transpose(2, 0, 1)  # stored (k, i, j)
    permuted_affine = ras_affine @ np.array([[0, 1, 0, 0], [0, 0, 1, 0], [1, 0, 0, 0], [0, 0, 0, 1.0]])
    angle = np.radians(12)  # an oblique acquisition: rotated 12° about the patient's z axis
    rotation = np.array(
        [[np.cos(angle), -np.sin(angle), 0, 0], [np.sin(angle), np.cos(angle), 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]
    )
    return {
        "RAS": (RAS, ras_affine),
        "LPS": (lps, lps_affine),
        "permuted": (permuted, permuted_affine),
        "oblique": (RAS, rotation @ ras_affine),
    }


@pytest.mark.parametrize("plane", ["axial", "coronal", "sagittal"])
@pytest.mark.parametrize("order", ["RAS", "LPS", "permuted", "oblique"])
def test_slices_follow_the_patient_not_the_storage_order(order, plane):
    data, affine = stored_orders()[order]
    display = to_display(data, affine, plane)
    np.testing.assert_array_equal(display, expected(plane))
    np.testing.assert_array_equal(from_display(display, affine, plane), data)  # and back, exactly


def test_axial_corner_is_anterior_top_and_patient_right_on_the_left():
    display = to_display(RAS, SPACING, "axial")
    right_anterior_superior = RAS[NX - 1, NY - 1, NZ - 1]
    assert display[-1, 0, 0] == right_anterior_superior  # top slice, first row, first column


def test_intensity_window_and_percentiles():
    hu = np.array([-1000.0, -500.0, 400.0, 1300.0, 3000.0])
    assert intensity_to_uint8(hu, {"window": [400.0, 1800.0]}).tolist() == [0, 0, 128, 255, 255]
    mr = np.linspace(0, 1000, 1001)
    mapped = intensity_to_uint8(mr, {"window": None, "percentiles": [0.0, 100.0]})
    assert mapped[0] == 0 and mapped[-1] == 255 and mapped[500] == 128


# ---------------------------------------------------------------- infer on volumes


def write_volume(path, data, affine, qform_code=1, sform_code=2) -> None:
    image = nib.Nifti1Image(data, affine)
    image.set_qform(affine, code=qform_code)
    image.set_sform(affine, code=sform_code)
    nib.save(image, str(path))


@pytest.fixture(scope="module")
def scan_display() -> np.ndarray:
    """A CT-like volume in display order (slice, row, column): 5 synthetic slices, 64×72, grey."""
    from flexseg.data.synthetic import synthetic_slice

    rng = np.random.default_rng(11)
    return np.stack([synthetic_slice(rng, 64, 72)[0][..., 0] for _ in range(5)]).astype(np.int16)


def test_infer_gives_label_volumes_on_the_inputs_own_grid(learned_project, tmp_path_factory, scan_display):
    """One scan stored four ways: each label volume has its input's shape, voxel order, affine
    and qform/sform codes; the four agree voxel for voxel once turned to the display order; and
    each slice's labels are those of the same slice inferred as a 2D image."""
    run = copy_of(learned_project / "runs" / "tiny", tmp_path_factory, "vol")
    home = run.parent
    scans = home / "scans"
    scans.mkdir()
    nz, ny, nx = scan_display.shape
    # RAS storage of a display volume: i = NX-1-column, j = NY-1-row, k = slice (the convention)
    ras = scan_display.transpose(2, 1, 0)[::-1, ::-1, :]
    ras_affine = SHIFT @ SPACING
    lps_affine = ras_affine @ np.array([[-1, 0, 0, nx - 1], [0, -1, 0, ny - 1], [0, 0, 1, 0], [0, 0, 0, 1.0]])
    perm_affine = ras_affine @ np.array([[0, 1, 0, 0], [0, 0, 1, 0], [1, 0, 0, 0], [0, 0, 0, 1.0]])
    stored = {
        "ras.nii.gz": (ras, ras_affine),
        "lps.nii": (np.ascontiguousarray(ras[::-1, ::-1, :]), lps_affine),
        "permuted.nii.gz": (np.ascontiguousarray(ras.transpose(2, 0, 1)), perm_affine),
    }
    for name, (data, affine) in stored.items():
        write_volume(scans / name, data, affine)
    out = home / "labels"
    result = CliRunner().invoke(app, ["infer", "--model", str(run), "--images", str(scans), "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert "3 label volumes (15 slices)" in result.output

    in_display = {}
    for name, (data, affine) in stored.items():
        written = nib.load(str(out / (name.split(".")[0] + ".nii.gz")))
        labels = np.asarray(written.dataobj)
        assert labels.shape == data.shape and labels.dtype == np.uint8
        np.testing.assert_allclose(written.affine, affine, atol=1e-5)
        assert int(written.header["qform_code"]) == 1 and int(written.header["sform_code"]) == 2
        assert set(np.unique(labels)) <= {0, 1, 2}
        in_display[name] = labels
    ras_labels = in_display["ras.nii.gz"]
    np.testing.assert_array_equal(in_display["lps.nii"], ras_labels[::-1, ::-1, :])
    np.testing.assert_array_equal(in_display["permuted.nii.gz"], ras_labels.transpose(2, 0, 1))
    display_labels = ras_labels[::-1, ::-1, :].transpose(2, 1, 0)  # back to (slice, row, column)
    assert (display_labels == 1).mean() > 0.02  # the model found bone: a real test of the slices' order

    # the same slices as 2D images, mapped as the model records, inferred by the 2D path
    import json

    mapping = json.loads((run / "model.json").read_text())["volume"]
    pixels = intensity_to_uint8(scan_display, mapping)
    flat = home / "flat"
    flat.mkdir()
    for s, image in enumerate(pixels):
        Image.fromarray(image).save(flat / f"s{s}.png")
    masks = home / "masks"
    assert (
        CliRunner().invoke(app, ["infer", "--model", str(run), "--images", str(flat), "--output", str(masks)]).exit_code
        == 0
    )
    for s in range(nz):
        mask = np.asarray(Image.open(masks / f"s{s}.png"))
        assert (mask == display_labels[s]).mean() > 0.999, s


def test_a_truncated_volume_is_named_and_the_others_are_written(learned_project, tmp_path_factory, scan_display):
    run = copy_of(learned_project / "runs" / "tiny", tmp_path_factory, "vol-bad")
    scans = run.parent / "scans"
    scans.mkdir()
    ras = np.ascontiguousarray(scan_display.transpose(2, 1, 0))
    write_volume(scans / "good.nii.gz", ras, SPACING)
    write_volume(scans / "bad.nii.gz", ras, SPACING)
    data = (scans / "bad.nii.gz").read_bytes()
    (scans / "bad.nii.gz").write_bytes(data[: len(data) // 2])
    out = run.parent / "labels"
    result = CliRunner().invoke(app, ["infer", "--model", str(run), "--images", str(scans), "--output", str(out)])
    assert result.exit_code == 3 and "bad.nii.gz" in result.output and "Traceback" not in result.output
    assert (out / "good.nii.gz").is_file() and not (out / "bad.nii.gz").exists()


# ---------------------------------------------------------------- scores in 3D


def ball(shape, spacing, centre_mm, radius_mm) -> np.ndarray:
    grid = np.indices(shape).astype(float) * np.array(spacing)[:, None, None, None]
    return ((grid - np.array(centre_mm)[:, None, None, None]) ** 2).sum(0) <= radius_mm**2


def test_a_sphere_and_a_shifted_sphere_with_anisotropic_voxels():
    """r = 10 mm, shifted d = 4 mm along the 2-mm axis. By hand: on a sphere the distance to the
    shifted one is about d·|cos θ|, and |cos θ| is uniform on [0, 1] over the surface, so
    HD95 ≈ 0.95·d = 3.8 mm. NSD weighs the voxel faces of the boundary: where the normal is n,
    a unit of sphere area holds |n₀| + |n₁| + |n₂| of face area, so at τ = 2 mm (t = τ/d = ½)
    NSD = [2πt² + 8(t√(1 − t²) + asin t)] / 6π = 0.489. Dice = V∩/V with
    V∩ = π(4r + d)(2r − d)²/12, so 0.704; the volume 4/3·π·r³ = 4.19 ml."""
    from flexseg.evaluation.volumes import score_volume
    from flexseg.scoring import hd95, surface_dice

    spacing, shape = (2.0, 1.0, 1.0), (24, 40, 40)
    truth = ball(shape, spacing, (22.0, 20.0, 20.0), 10.0)
    shifted = ball(shape, spacing, (26.0, 20.0, 20.0), 10.0)
    assert hd95(truth, shifted, spacing) == pytest.approx(3.8, abs=0.5)
    assert hd95(truth, shifted) == pytest.approx(1.9, abs=0.5)  # counted in voxels the shift halves: spacing matters
    assert surface_dice(truth, shifted, spacing, 2.0) == pytest.approx(0.489, abs=0.04)
    assert surface_dice(truth, shifted, spacing, 4.0) > 0.97
    assert hd95(truth, truth, spacing) == 0.0 and surface_dice(truth, truth, spacing, 0.0) == 1.0

    labels_t, labels_p = truth.astype(np.uint8), shifted.astype(np.uint8)
    row = score_volume(labels_t, labels_p, spacing, ["bone"], {"bone": 2.0})
    v_intersection = np.pi * (4 * 10 + 4) * (2 * 10 - 4) ** 2 / 12
    assert row["dice_bone"] == pytest.approx(v_intersection / (4 / 3 * np.pi * 1000), abs=0.03)
    assert row["true_ml_bone"] == pytest.approx(4 / 3 * np.pi * 1000 / 1000, rel=0.04)
    assert row["volume_rel_diff_bone"] == pytest.approx(0.0, abs=0.02)
    assert row["hd95_mm_bone"] == pytest.approx(3.8, abs=0.5) and row["nsd_bone"] == pytest.approx(0.489, abs=0.04)


def write_labels(path, labels, spacing) -> None:
    write_volume(path, labels.astype(np.uint8), np.diag([*spacing, 1.0]))


def test_evaluate_scores_label_volume_folders_and_refuses_another_grid(tmp_path):
    import json

    exp = write_yaml(tmp_path / "exp.yaml", tiny_experiment(run_dir=str(tmp_path / "run")))
    spacing, shape = (2.0, 1.0, 1.0), (24, 40, 40)
    truth = ball(shape, spacing, (22.0, 20.0, 20.0), 10.0).astype(np.uint8)  # bone
    truth[ball(shape, spacing, (22.0, 20.0, 20.0), 4.0)] = 2  # a lesion inside
    pred = np.roll(truth, 2, axis=0)  # 4 mm along the 2-mm axis
    for folder, volumes in (("truth", {"a": truth, "b": truth}), ("pred", {"a": pred, "b": truth})):
        (tmp_path / folder).mkdir()
        for name, labels in volumes.items():
            write_labels(tmp_path / folder / f"{name}.nii.gz", labels, spacing)
    args = ["evaluate", str(exp), "--pred", str(tmp_path / "pred"), "--truth", str(tmp_path / "truth"), "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["volumes_scored"] == 2 and report["hd95_unit"] == "mm"
    a, b = report["volumes"]
    assert b["dice_bone"] == 1.0 and b["hd95_mm_bone"] == 0.0 and b["nsd_lesion"] == 1.0
    assert a["hd95_mm_bone"] == pytest.approx(3.8, abs=0.6)
    bone = report["per_class"]["bone"]
    assert bone["dice"] == pytest.approx((a["dice_bone"] + 1.0) / 2) and bone["dice_median"] == bone["dice"]
    assert (tmp_path / "run" / "evaluate" / "pred" / "per_volume.csv").read_text().startswith("volume,spacing_mm,")
    gate = CliRunner().invoke(app, [*args[:-1], "--fail-under", "nsd_bone=0.99", "--output", str(tmp_path / "o2")])
    assert gate.exit_code == 1 and "nsd_bone" in gate.output

    write_labels(tmp_path / "pred" / "b.nii.gz", truth, (1.0, 1.0, 1.0))  # right shape, another affine
    other = CliRunner().invoke(app, [*args, "--output", str(tmp_path / "o3")])
    assert other.exit_code == 3 and "not on the grid" in other.output


# ---------------------------------------------------------------- split from volumes


def stored_three_ways(display: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """A (slice, row, column) volume stored in RAS, LPS and permuted order, with their affines."""
    nz, ny, nx = display.shape
    ras = display.transpose(2, 1, 0)[::-1, ::-1, :]  # i = NX-1-column, j = NY-1-row, k = slice
    ras_affine = SHIFT @ SPACING
    return {
        "RAS": (np.ascontiguousarray(ras), ras_affine),
        "LPS": (
            np.ascontiguousarray(ras[::-1, ::-1, :]),
            ras_affine @ np.array([[-1, 0, 0, nx - 1], [0, -1, 0, ny - 1], [0, 0, 1, 0], [0, 0, 0, 1.0]]),
        ),
        "permuted": (
            np.ascontiguousarray(ras.transpose(2, 0, 1)),
            ras_affine @ np.array([[0, 1, 0, 0], [0, 0, 1, 0], [1, 0, 0, 0], [0, 0, 0, 1.0]]),
        ),
    }


def test_split_of_volumes_gives_the_same_slices_whatever_the_storage_order(tmp_path):
    import json

    from flexseg.data.synthetic import synthetic_slice

    rng = np.random.default_rng(5)
    made = [synthetic_slice(rng, 64, 72) for _ in range(5)]
    scan = np.stack([image[..., 0] for image, _ in made]).astype(np.int16) * 4 - 1000  # HU-like
    labels = np.stack([lab for _, lab in made]).astype(np.uint8)
    labels[[0, 4]] = 0  # two slices without foreground
    outputs = {}
    for order, ((scan_data, affine), (label_data, _)) in zip(
        stored_three_ways(scan), zip(stored_three_ways(scan).values(), stored_three_ways(labels).values())
    ):
        raw = tmp_path / order
        for kind in ("images", "masks"):
            (raw / kind).mkdir(parents=True)
        write_volume(raw / "images" / "case_001_0000.nii.gz", scan_data, affine)  # nnU-Net's names
        write_volume(raw / "masks" / "case_001.nii.gz", label_data, affine)
        exp = write_yaml(
            tmp_path / f"{order}.yaml",
            tiny_experiment(
                data={"root": str(tmp_path / f"data-{order}")},
                split={
                    "images": str(raw / "images"),
                    "masks": str(raw / "masks"),
                    "ratios": {"train": 1.0},
                    "empty_slices": 0.5,
                },
                volume={"window": [-500, 1500]},
            ),
        )
        result = CliRunner().invoke(app, ["split", str(exp)])
        assert result.exit_code == 0, result.output
        assert "4 slice pairs of 1 volumes (axial)" in result.output
        outputs[order] = tmp_path / f"data-{order}" / "train"

    names = sorted(p.name for p in (outputs["RAS"] / "images").iterdir())
    assert len(names) == 4 and names[0].startswith("case_001_0000_")  # one of the two empty slices kept
    pixels = intensity_to_uint8(scan, {"window": [-500.0, 1500.0]})
    for order, folder in outputs.items():
        assert sorted(p.name for p in (folder / "images").iterdir()) == names, order
        for name in names:
            assert (folder / "images" / name).read_bytes() == (outputs["RAS"] / "images" / name).read_bytes()
            k = int(name.rsplit("_", 1)[1].removesuffix(".png"))
            np.testing.assert_array_equal(np.asarray(Image.open(folder / "images" / name)), pixels[k])
            np.testing.assert_array_equal(np.asarray(Image.open(folder / "masks" / name)), labels[k])
    manifest = json.loads((outputs["permuted"].parent / "split.json").read_text())
    entry = manifest["files"][0]
    assert entry["volume"] == "case_001_0000.nii.gz" and entry["group"] == "case_001"
    assert entry["pixel_spacing_mm"] == [0.7, 0.8]  # rows run along y (0.7 mm), columns along x (0.8 mm)
    geometry = manifest["volumes"]["case_001_0000.nii.gz"]
    assert geometry["shape"] == [5, 72, 64] and geometry["spacing_mm"] == [2.5, 0.7, 0.8]
    assert geometry["empty_slices_left_out"] == 1 and manifest["counts"] == {"train": 4}


def test_context_slices_are_the_neighbours_in_split_train_and_infer(learned_project, tmp_path_factory, scan_display):
    """image.context: 1: split writes each slice's PNG as (previous, current, next) slice, the edge
    slice repeated, whatever the storage order; train refuses an experiment that no longer says how
    the slices were made; infer on the volume feeds the model exactly those three channels."""
    import json

    home = tmp_path_factory.mktemp("context")
    window = [-500.0, 1500.0]
    scan = scan_display * 4 - 1000  # HU-like
    labels = (scan_display > 120).astype(np.uint8)
    data, affine = stored_three_ways(scan)["LPS"]
    label_data, _ = stored_three_ways(labels)["LPS"]
    for kind in ("images", "masks"):
        (home / "raw" / kind).mkdir(parents=True)
    write_volume(home / "raw" / "images" / "c.nii.gz", data, affine)
    write_volume(home / "raw" / "masks" / "c.nii.gz", label_data, affine)
    settings = dict(
        data={"root": str(home / "data")},
        split={"images": str(home / "raw" / "images"), "masks": str(home / "raw" / "masks"), "ratios": {"train": 1.0}},
        volume={"window": window},
    )
    exp = write_yaml(
        home / "e.yaml", tiny_experiment(image={"width": 32, "height": 32, "channels": 3, "context": 1}, **settings)
    )
    result = CliRunner().invoke(app, ["split", str(exp)])
    assert result.exit_code == 0, result.output
    pixels = intensity_to_uint8(scan, {"window": window})
    nz = len(pixels)
    for k in range(nz):
        png = np.asarray(Image.open(home / "data" / "train" / "images" / f"c_{k:04d}.png"))
        neighbours = [pixels[max(k - 1, 0)], pixels[k], pixels[min(k + 1, nz - 1)]]  # by hand, edges repeated
        np.testing.assert_array_equal(png, np.stack(neighbours, axis=-1))
    manifest = json.loads((home / "data" / "split.json").read_text())
    assert manifest["volume_mapping"]["context"] == 1

    # slices made with context, an experiment without it: train refuses before loading anything
    plain = write_yaml(
        home / "plain.yaml", tiny_experiment(image={"width": 32, "height": 32, "channels": 3}, **settings)
    )
    result = CliRunner().invoke(app, ["train", str(plain)])
    assert result.exit_code == 2 and "context: 1 in the split, 0 now" in result.output, result.output
    # context needs volumes to take neighbours from, and 3 channels to hold them
    for kind in ("images", "masks"):
        (home / "raw2d" / kind).mkdir(parents=True)
        Image.fromarray(pixels[0]).save(home / "raw2d" / kind / "a.png")
    flat = write_yaml(
        home / "flat.yaml",
        tiny_experiment(
            image={"width": 32, "height": 32, "channels": 3, "context": 1},
            split={"images": str(home / "raw2d" / "images"), "masks": str(home / "raw2d" / "masks")},
        ),
    )
    result = CliRunner().invoke(app, ["split", str(flat)])
    assert result.exit_code == 2 and "holds no volume" in result.output, result.output
    grey = write_yaml(
        home / "grey.yaml", tiny_experiment(image={"width": 32, "height": 32, "channels": 1, "context": 1})
    )
    result = CliRunner().invoke(app, ["check", str(grey)])
    assert result.exit_code == 2 and "set channels: 3" in result.output, result.output

    # a model that records context 1 (the shared model's card, told so): the volume's label volume
    # equals the 2D inference of split's context PNGs, slice for slice
    run = copy_of(learned_project / "runs" / "tiny", tmp_path_factory, "ctx-run")
    card = json.loads((run / "model.json").read_text())
    card["volume"] = manifest["volume_mapping"]
    (run / "model.json").write_text(json.dumps(card))
    out = home / "labels"
    args = ["infer", "--model", str(run), "--images", str(home / "raw" / "images"), "--output", str(out)]
    assert CliRunner().invoke(app, args).exit_code == 0
    volume_labels = to_display(np.asarray(nib.load(str(out / "c.nii.gz")).dataobj), affine, "axial")
    flat_out = home / "flat-labels"
    args = [
        "infer",
        "--model",
        str(run),
        "--images",
        str(home / "data" / "train" / "images"),
        "--output",
        str(flat_out),
    ]
    assert CliRunner().invoke(app, args).exit_code == 0
    for k in range(nz):
        mask = np.asarray(Image.open(flat_out / f"c_{k:04d}.png"))
        assert (mask == volume_labels[k]).mean() > 0.999, k
    assert (volume_labels > 0).mean() > 0.01  # the model found something: the comparison is not of empties


# ---------------------------------------------------------------- DICOM series (real data)


def gt_label_volume(knee: Path) -> tuple[np.ndarray, np.ndarray]:
    """The GT-Masks as one label volume, built here from the headers (not by flexseg's reader):
    slices ordered by ImagePositionPatient along the normal, voxels (column, row, slice), RAS."""
    import pydicom

    rows = []
    for path in (knee / "Data").glob("*.dcm"):
        ds = pydicom.dcmread(str(path), stop_before_pixels=True)
        iop = np.array(ds.ImageOrientationPatient, float)
        normal = np.cross(iop[:3], iop[3:])
        rows.append((float(np.array(ds.ImagePositionPatient, float) @ normal), int(ds.InstanceNumber), ds, iop, normal))
    rows.sort(key=lambda r: r[0])
    masks = [np.asarray(Image.open(knee / "GT-Masks" / f"Mask_{n:03d}.png").convert("L")) > 0 for _, n, *_ in rows]
    _, _, first, iop, normal = rows[0]
    row_spacing, col_spacing = (float(v) for v in first.PixelSpacing)
    lps = np.eye(4)
    lps[:3, 0], lps[:3, 1] = iop[:3] * col_spacing, iop[3:] * row_spacing
    lps[:3, 2] = normal * np.median(np.diff([r[0] for r in rows]))
    lps[:3, 3] = np.array(first.ImagePositionPatient, float)
    return np.stack([m.T for m in masks], axis=-1).astype(np.uint8), np.diag([-1.0, -1, 1, 1]) @ lps


@pytest.mark.skipif(not KNEE_RAW.is_dir(), reason="needs ../shared/datasets/kneebones3dify-raw")
def test_the_kneebones_slices_are_one_sparse_series_ordered_by_position():
    import pydicom

    from flexseg.data.dicom_series import group_series

    files = sorted((KNEE_RAW / "Data").glob("*.dcm"))
    (series,) = group_series(files)
    numbers = [int(pydicom.dcmread(str(p), stop_before_pixels=True).InstanceNumber) for p in series.files]
    assert len(numbers) == 24 and numbers == sorted(numbers, reverse=True)  # IN 1 is the top: inferior first
    assert [p.name for p in series.files] != [p.name for p in files]  # not the name order (_108 before _12)
    notes = " ".join(series.notes)
    # normal = row × column direction = (0.0306, -0.0446, 0.9985): acos(0.9985) = 3.1° from the z axis
    assert "sparse: slices 4.22 mm apart, 0.352 mm thick" in notes and "oblique" in notes and "3.1°" in notes


@pytest.mark.slow
@pytest.mark.skipif(not KNEE_RAW.is_dir(), reason="needs ../shared/datasets/kneebones3dify-raw")
def test_infer_volumes_on_the_kneebones_series_matches_the_per_slice_masks(learned_project, tmp_path_factory):
    """The series as one label volume: each of its slices is the mask the same model gives the
    DICOM file alone; evaluate scores it against the GT masks built into a volume here."""
    import json

    run = copy_of(learned_project / "runs" / "tiny", tmp_path_factory, "knee")
    card = json.loads((run / "model.json").read_text())
    card["volume"] = {"plane": "axial", "window": "header", "percentiles": None}  # as single DICOM files are read
    (run / "model.json").write_text(json.dumps(card))
    home = run.parent
    args = ["infer", "--model", str(run), "--images", str(KNEE_RAW / "Data")]
    result = CliRunner().invoke(app, [*args, "--volumes", "--dicom-seg", "--output", str(home / "vol")])
    assert result.exit_code == 0, result.output
    assert "1 label volume (24 slices) with 1 DICOM-SEG" in result.output and "sparse" in result.output
    (written,) = (home / "vol").glob("*.nii.gz")
    assert written.name.startswith("1.3.76.2.1.1.4.1") and written.name.endswith(".nii.gz")
    volume = nib.load(str(written))
    labels = np.asarray(volume.dataobj)
    assert labels.shape == (512, 512, 24) and labels.dtype == np.uint8
    assert CliRunner().invoke(app, [*args, "--output", str(home / "flat")]).exit_code == 0

    from flexseg.data.dicom_series import group_series

    (series,) = group_series(sorted((KNEE_RAW / "Data").glob("*.dcm")))
    for k, path in enumerate(series.files):
        mask = np.asarray(Image.open(home / "flat" / (path.stem + ".png")))
        assert (labels[:, :, k].T == mask).mean() > 0.999, path.name

    # the DICOM-SEG references the series, file by file, and holds the same masks
    import highdicom as hd
    import pydicom

    seg = hd.seg.segread(str(home / "vol" / written.name.replace(".nii.gz", ".seg.dcm")))
    assert seg.SOPClassUID == "1.2.840.10008.5.1.4.1.1.66.4"  # Segmentation Storage
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == written.name.removesuffix(".nii.gz")
    assert [s.SegmentLabel for s in seg.SegmentSequence] == card["class_names"][1:]
    files = sorted((KNEE_RAW / "Data").glob("*.dcm"))
    uids = [pydicom.dcmread(str(p), stop_before_pixels=True).SOPInstanceUID for p in files]
    frames = seg.get_pixels_by_source_instance(source_sop_instance_uids=uids, combine_segments=True)
    assert frames.shape == (24, 512, 512)
    for path, frame in zip(files, frames):
        assert (frame == np.asarray(Image.open(home / "flat" / (path.stem + ".png")))).mean() > 0.999, path.name
    assert (frames > 0).mean() > 0.01  # the model found bone: the comparison is not of empty frames

    truth, affine = gt_label_volume(KNEE_RAW)
    np.testing.assert_allclose(volume.affine, affine, atol=1e-3)
    (home / "gt").mkdir()
    write_volume(home / "gt" / written.name, truth, affine)
    exp = write_yaml(home / "knee.yaml", tiny_experiment(classes=CLASSES[:2], run_dir=str(run)))
    (home / "pred").mkdir()
    binary = nib.Nifti1Image((labels > 0).astype(np.uint8), volume.affine, header=volume.header)
    nib.save(binary, str(home / "pred" / written.name))  # bone vs background, as the GT masks
    scored = CliRunner().invoke(
        app, ["evaluate", str(exp), "--pred", str(home / "pred"), "--truth", str(home / "gt"), "--json"]
    )
    assert scored.exit_code == 0, scored.output
    report = json.loads(scored.stdout)
    assert report["volumes_scored"] == 1 and 0.0 <= report["per_class"]["bone"]["dice"] <= 1.0
    assert report["volumes"][0]["true_ml_bone"] > 1.0  # bone in the truth: the volume was built right


def test_dicom_seg_needs_series_and_highdicom(monkeypatch, tmp_path):
    import importlib.util

    from flexseg.data.dicom_seg import require_highdicom
    from flexseg.errors import ConfigError

    args = ["infer", "--model", str(tmp_path), "--images", str(tmp_path), "--dicom-seg"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and "pass --volumes too" in result.output, result.output
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "highdicom" else real(name, *a))
    with pytest.raises(ConfigError, match=r"pip install 'flexseg\[dicom-seg\]'"):
        require_highdicom()


@pytest.mark.slow
def test_the_volume_demo_runs_end_to_end(tmp_path):
    """`flexseg demo experiments/demo-volumes.yaml --volumes`, one epoch: volumes in three storage
    orders are split into slices, a model is trained, and the unseen volumes get label volumes on
    their own grids, scored in 3D."""
    import json

    from tests.conftest import REPO

    sets = {
        "train.epochs": 1,
        "image.width": 64,  # the demo's volumes are made at the model's size (96 in the demo)
        "image.height": 64,
        "split.images": tmp_path / "raw" / "images",
        "split.masks": tmp_path / "raw" / "masks",
        "data.root": tmp_path / "data",
        "run_dir": tmp_path / "run",
    }
    args = [a for k, v in sets.items() for a in ("--set", f"{k}={v}")]
    result = CliRunner().invoke(app, ["demo", str(REPO / "experiments" / "demo-volumes.yaml"), "--volumes", *args])
    assert result.exit_code == 0, result.output
    assert "4 unseen volumes → label volumes" in result.output and "scored in 3D" in result.output
    for i in range(4):
        scan = nib.load(str(tmp_path / "raw" / "unseen" / "images" / f"unseen_{i}.nii.gz"))
        labels = nib.load(str(tmp_path / "run" / "unseen_labels" / f"unseen_{i}.nii.gz"))
        assert labels.shape == scan.shape and np.allclose(labels.affine, scan.affine)
    assert {scan.shape for scan in [nib.load(str(p)) for p in (tmp_path / "raw" / "images").glob("*.nii.gz")]} == {
        (64, 64, 10),
        (10, 64, 64),
    }  # RAS/LPS and permuted storage
    manifest = json.loads((tmp_path / "data" / "split.json").read_text())
    assert len(manifest["volumes"]) == 20 and sum(manifest["counts"].values()) == 200
    rows = (tmp_path / "run" / "evaluate_3d" / "per_volume.csv").read_text().splitlines()
    assert len(rows) == 5 and rows[0].startswith("volume,spacing_mm,dice_bone,")
    evaluation = json.loads((tmp_path / "run" / "evaluation.json").read_text())
    assert evaluation["volumes_3d"]["volumes_scored"] == 3  # the test split's 3 volumes, stacked back


def test_test_slices_are_scored_per_source_volume_only_when_whole(tmp_path):

    from flexseg.config import load_experiment
    from flexseg.evaluation.volumes import score_slices_as_volumes

    exp = load_experiment(write_yaml(tmp_path / "e.yaml", tiny_experiment(classes=CLASSES[:2])), [])
    truth = ball((4, 20, 20), (2.5, 1.0, 1.0), (5.0, 10.0, 10.0), 4.0).astype(np.uint8)
    from flexseg.data.manifest import SplitManifest, manifest_text

    def piece(volume: str, k: int) -> dict:
        name = f"{volume[0]}_{k}.png"
        return {"image": volume, "mask": volume, "group": volume, "split": "test", "volume": volume}, {
            "slice_index": k,
            "output_image": f"images/{name}",
            "output_mask": f"masks/{name}",
        }

    files = [a | b for a, b in [piece("a.nii.gz", k) for k in range(4)] + [piece("b.nii.gz", k) for k in (0, 2)]]
    geometry = {"shape": [20, 20, 4], "affine": np.eye(4).tolist(), "plane": "axial", "slices": 4}
    volumes = {
        "a.nii.gz": {"mask": "a.nii.gz", "spacing_mm": [2.5, 1.0, 1.0], **geometry},
        "b.nii.gz": {"mask": "b.nii.gz", "spacing_mm": [1.0, 1.0, 1.0], **geometry},
    }
    header = {"flexseg_version": "0", "experiment": "tiny", "created": "", "images": "", "masks": "", "pairing": "stem"}
    header |= {"grouping": "", "ratios": {"test": 1.0}, "counts": {"test": 6}, "groups": {"test": 2}}
    manifest = SplitManifest.model_validate({**header, "files": files, "volumes": volumes}, strict=False)
    (tmp_path / "split").mkdir()
    (tmp_path / "split.json").write_text(manifest_text(manifest))
    slices = {f"a_{k}.png": (truth[k], truth[k]) for k in range(4)} | {
        f"b_{k}.png": (truth[k], truth[k]) for k in (0, 2)
    }
    report, notes = score_slices_as_volumes(exp, slices, tmp_path / "split")
    assert [v["volume"] for v in report.volumes] == ["a.nii.gz"] and report.volumes[0]["dice_bone"] == 1.0
    assert report.volumes[0]["spacing_mm"] == "2.5x1x1"
    assert notes == ["b.nii.gz: 2 of its 4 slices in the test split; not scored in 3D"]


def test_a_volume_whose_header_claims_terabytes_is_refused_before_reading(tmp_path):
    """A few hundred bytes of NIfTI header claiming 30000×30000×30000 voxels (NIfTI-1 dims are int16): refused from the
    header, with the size and the limit, in a separate process with bounded memory."""
    import resource
    import subprocess
    import sys

    header = nib.Nifti1Header()
    header.set_data_shape((30000, 30000, 30000))
    header.set_data_dtype(np.uint8)
    bomb = tmp_path / "bomb.nii"
    bomb.write_bytes(header.binaryblock + b"\0" * 4 + b"\1" * 1000)
    code = f"from pathlib import Path; from flexseg.data.volumes import read_volume; read_volume(Path({str(bomb)!r}))"

    def limit_memory():  # 2 GB of address space: an attempt to read it would fail, not swap
        resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))

    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, preexec_fn=limit_memory
    )
    assert run.returncode != 0 and "DataError" in run.stderr and "over the limit" in run.stderr
    assert "MemoryError" not in run.stderr
    (tmp_path / "in").mkdir()
    bomb.rename(tmp_path / "in" / "bomb.nii")
    result = CliRunner().invoke(app, ["infer", "--model", str(tmp_path / "none"), "--images", str(tmp_path / "in")])
    assert result.exit_code == 4  # no model: refused before the volume is touched


@pytest.mark.skipif(not KNEE_RAW.is_dir(), reason="needs ../shared/datasets/kneebones3dify-raw")
def test_split_records_the_header_window_its_dicom_slices_used(knee_split_once, tmp_path):
    """volume.window: header: split.json records each slice's window, and the model's card gets the
    one window they share, as numbers (what a NIfTI of the series needs)."""
    import json

    from flexseg.data.audit import header_windows_used
    from tests.conftest import knee_experiment

    files = json.loads((knee_split_once / "split.json").read_text())["files"]
    assert {tuple(f["dicom_window"]) for f in files} == {(1114.0, 2112.0)} and len(files) == 24
    exp = knee_experiment(knee_split_once, tmp_path)
    assert header_windows_used(exp) == {"header_window": [1114.0, 2112.0], "header_inverted": False}


def test_a_nifti_for_a_header_window_model_without_one_window_is_refused():
    from flexseg.errors import DataError

    data = np.zeros((2, 4, 4), np.float32)
    for mapping, why in (
        ({"window": "header", "header_windows": 3}, "used 3 different windows"),
        ({"window": "header"}, "before flexseg recorded"),
    ):
        with pytest.raises(DataError, match=why):
            intensity_to_uint8(data, mapping)
    mapped = intensity_to_uint8(
        np.array([[[0.0, 1114.0, 5000.0]]], np.float32), {"window": "header", "header_window": [1114, 2112]}
    )
    assert mapped.tolist() == [[[0, 128, 255]]]


@pytest.mark.slow
@pytest.mark.skipif(not KNEE_RAW.is_dir(), reason="needs ../shared/datasets/kneebones3dify-raw")
def test_a_nifti_made_from_dicom_slices_gets_the_masks_of_the_slices(learned_project, tmp_path_factory):
    """A model trained on DICOM slices mapped by their header window (recorded as numbers) gives a
    NIfTI conversion of the same series the label volume it gives the series itself."""
    import json

    from flexseg.data.dicom_series import group_series, series_volume

    run = copy_of(learned_project / "runs" / "tiny", tmp_path_factory, "knee-nifti")
    card = json.loads((run / "model.json").read_text())
    window = {"header_window": [1114.0, 2112.0], "header_inverted": False}
    card["volume"] = {"plane": "axial", "window": "header", "percentiles": None, **window}
    (run / "model.json").write_text(json.dumps(card))
    home = run.parent
    (series,) = group_series(sorted((KNEE_RAW / "Data").glob("*.dcm")))
    values = series_volume(series, header_window=False)  # the stored values, as a converter writes them
    (home / "nifti").mkdir()
    nib.save(values.image, str(home / "nifti" / "knee.nii.gz"))
    args = ["infer", "--model", str(run), "--output"]
    from_dicom = CliRunner().invoke(app, [*args, str(home / "a"), "--images", str(KNEE_RAW / "Data"), "--volumes"])
    assert from_dicom.exit_code == 0, from_dicom.output
    from_nifti = CliRunner().invoke(app, [*args, str(home / "b"), "--images", str(home / "nifti")])
    assert from_nifti.exit_code == 0, from_nifti.output
    (a,) = (home / "a").glob("*.nii.gz")
    labels_dicom, labels_nifti = (
        np.asarray(nib.load(str(a)).dataobj),
        np.asarray(nib.load(str(home / "b" / "knee.nii.gz")).dataobj),
    )
    assert labels_dicom.shape == labels_nifti.shape == (512, 512, 24)
    assert (labels_dicom > 0).mean() > 0.01  # the model finds bone: not a comparison of empty volumes
    assert (labels_dicom == labels_nifti).mean() > 0.9999
