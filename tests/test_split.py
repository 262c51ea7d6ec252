import hashlib
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from flexseg.commands.split import assign_folds, assign_groups, plan_split, write_split
from flexseg.config import load_experiment
from flexseg.data.classes import ClassMap
from flexseg.data.io import read_image, read_mask, write_image, write_palette_mask
from flexseg.errors import ConfigError, DataError
from tests.conftest import (
    CLASSES,
    NBM_MINI,
    REPO,
    colours_of,
    tiny_experiment,
    write_yaml,
)


def make_raw(root: Path, patients: int = 10, slices: int = 4, size: int = 32) -> Path:
    from flexseg.data.synthetic import synthetic_slice

    rng = np.random.default_rng(3)
    palette = ClassMap([c["name"] for c in CLASSES], [tuple(c["color"]) for c in CLASSES]).palette()
    for p in range(patients):
        for k in range(slices):
            image, labels = synthetic_slice(rng, size, size)
            write_image(root / "images" / f"pat{p}_s{k}.png", image)
            write_palette_mask(root / "masks" / f"pat{p}_s{k}.png", labels, palette)
    return root


def experiment(tmp_path: Path, **split):
    spec = {
        "images": "raw/images",
        "masks": "raw/masks",
        "group_pattern": r"^(pat\d+)_",
        "ratios": {"train": 0.6, "valid": 0.2, "test": 0.2},
        **split,
    }
    return load_experiment(write_yaml(tmp_path / "exp.yaml", tiny_experiment(split=spec)))


def tree_digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        h.update(str(p.relative_to(folder)).encode() + (p.read_bytes() if p.is_file() else b""))
    return h.hexdigest()


@pytest.fixture
def raw(tmp_path):
    return make_raw(tmp_path / "raw")


def test_assign_groups_matches_ratios_with_single_files():
    assigned = assign_groups({f"f{i}": 1 for i in range(100)}, {"train": 0.7, "valid": 0.2, "test": 0.1}, seed=137)
    assert Counter(assigned.values()) == {"train": 70, "valid": 20, "test": 10}
    again = assign_groups({f"f{i}": 1 for i in range(100)}, {"train": 0.7, "valid": 0.2, "test": 0.1}, seed=137)
    other = assign_groups({f"f{i}": 1 for i in range(100)}, {"train": 0.7, "valid": 0.2, "test": 0.1}, seed=1)
    assert assigned == again and assigned != other


def test_assign_folds_balances_sizes():
    folds = assign_folds({f"g{i}": 1 + i % 3 for i in range(30)}, 5, seed=0)
    sizes = Counter()
    for g, k in folds.items():
        sizes[k] += 1 + int(g[1:]) % 3
    assert sorted(sizes) == [0, 1, 2, 3, 4] and max(sizes.values()) - min(sizes.values()) <= 2


def test_split_keeps_each_patient_in_one_split_and_writes_a_manifest(tmp_path, raw):
    before = tree_digest(raw)
    exp = experiment(tmp_path)
    result = write_split(exp, plan_split(exp))
    assert tree_digest(raw) == before  # the sources are never modified
    manifest = json.loads((result.output / "split.json").read_text())
    assert len(manifest["files"]) == 40 and manifest["pairing"] == "stem"
    homes: dict[str, set] = {}
    for entry in manifest["files"]:
        homes.setdefault(entry["group"], set()).add(entry["split"])
        out = result.output / entry["split"]
        assert (out / entry["output_image"]).is_file() and (out / entry["output_mask"]).is_file()
        assert entry["mask"] == entry["image"]
    assert len(homes) == 10 and all(len(s) == 1 for s in homes.values())
    assert manifest["counts"] == {"train": 24, "valid": 8, "test": 8}
    assert sorted(p.name for p in (result.output / "test" / "images").iterdir()) == sorted(
        e["output_image"].split("/")[1] for e in manifest["files"] if e["split"] == "test"
    )


def test_split_refuses_to_overwrite_without_force_and_only_replaces_a_split_folder(tmp_path, raw):
    exp = experiment(tmp_path)
    write_split(exp, plan_split(exp))
    with pytest.raises(DataError, match="already exists; pass --force"):
        plan_split(exp)
    (tmp_path / "data" / "train" / "images" / "pat0_s0.png").unlink()
    write_split(exp, plan_split(exp, force=True))  # replaced: the missing file is back
    assert len(json.loads((tmp_path / "data" / "split.json").read_text())["files"]) == 40
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".data.")]  # no temporary folders left

    foreign = tmp_path / "mine"
    (foreign / "notes").mkdir(parents=True)
    with pytest.raises(DataError, match="not written by flexseg split"):
        plan_split(exp, output=foreign, force=True)
    assert (foreign / "notes").is_dir()


def test_output_inside_a_source_folder_is_refused(tmp_path, raw):
    with pytest.raises(ConfigError, match="overlaps the source"):
        plan_split(experiment(tmp_path), output=raw / "images" / "out")


def test_unpaired_files_fail_unless_allowed(tmp_path, raw):
    (raw / "masks" / "pat0_s0.png").unlink()
    exp = experiment(tmp_path)
    with pytest.raises(DataError, match=r"1 image\(s\) without a mask: 'pat0_s0.png'.*--allow-unpaired"):
        plan_split(exp)
    assert len(plan_split(exp, allow_unpaired=True).pairing.pairs) == 39


def test_group_pattern_must_match_every_file(tmp_path, raw):
    (raw / "images" / "pat0_s0.png").rename(raw / "images" / "odd.png")
    (raw / "masks" / "pat0_s0.png").rename(raw / "masks" / "odd.png")
    with pytest.raises(DataError, match=r"does not match 1 image name.*odd.png"):
        plan_split(experiment(tmp_path))


def test_groups_from_csv(tmp_path, raw):
    rows = ["file,group"] + [f"pat{p}_s{k}.png,{'A' if p < 5 else 'B'}{p % 5}" for p in range(10) for k in range(4)]
    (tmp_path / "groups.csv").write_text("\n".join(rows) + "\n")
    plan = plan_split(experiment(tmp_path, group_pattern=None, groups_csv="groups.csv"))
    splits_of_group = {g: {p for gg, p in zip(plan.groups, plan.assignment) if gg == g} for g in set(plan.groups)}
    assert len(splits_of_group) == 10 and all(len(p) == 1 for p in splits_of_group.values())


def test_k_fold_writes_one_dataset_per_fold(tmp_path, raw):
    exp = experiment(tmp_path, folds=4)
    result = write_split(exp, plan_split(exp))
    folds = sorted(p.name for p in result.output.iterdir() if p.is_dir())
    assert folds == ["fold_0", "fold_1", "fold_2", "fold_3"]
    names = {
        f: {s: {p.name for p in (result.output / f / s / "images").iterdir()} for s in ("train", "valid", "test")}
        for f in folds
    }
    tests = {frozenset(n["test"]) for n in names.values()}
    assert len(tests) == 1 and len(next(iter(tests))) == 8  # one held-out test set, 2 patients
    valids = [n["valid"] for n in names.values()]
    assert (
        sum(len(v) for v in valids) == 32 and len(set().union(*valids)) == 32
    )  # folds are disjoint and cover the rest
    for n in names.values():
        assert not n["train"] & n["valid"] and not (n["train"] | n["valid"]) & n["test"]


def test_mask_values_map_raw_values_to_classes(tmp_path):
    raw = tmp_path / "raw"
    (raw / "images").mkdir(parents=True)
    (raw / "masks").mkdir()
    write_image(raw / "images" / "a.png", np.full((8, 8, 3), 50, np.uint8))
    from PIL import Image

    bits = np.zeros((8, 8), bool)
    bits[2:5, 2:5] = True
    Image.fromarray(bits).save(raw / "masks" / "a.png")  # a 1-bit PNG
    exp = experiment(tmp_path, group_pattern=None, mask_values={0: "background", 255: "lesion"}, ratios={"train": 1.0})
    write_split(exp, plan_split(exp))
    mask = read_mask(tmp_path / "data" / "train" / "masks" / "a.png")
    assert (mask[2:5, 2:5] == (255, 0, 0)).all() and (mask[bits == 0] == 0).all()


def test_mask_values_must_name_classes(tmp_path):
    with pytest.raises(ConfigError, match="'bnoe', which is not a class; did you mean 'bone'"):
        experiment(tmp_path, mask_values={255: "bnoe"})


def test_real_kneebones_dicom_split(tmp_path):
    """The experiment's own split section on the raw DICOMs: windowed 8-bit images, masks in (128,40,40)."""
    exp = load_experiment(REPO / "experiments" / "kneebones3dify.yaml", [f"data.root={tmp_path / 'knee'}"])
    result = write_split(exp, plan_split(exp))
    assert result.counts == {"train": 16, "valid": 5, "test": 3} and result.dicom_notes == {"header window": 24}
    manifest = json.loads((result.output / "split.json").read_text())
    by_image = {e["image"]: e for e in manifest["files"]}
    entry = by_image["1_3_76_2_1_1_4_1_716728356_716728387_12.dcm"]
    assert entry["mask"] == "Mask_013.png" and entry["image_conversion"] == "header window C=1114 W=2112"
    out = result.output / entry["split"]
    image = read_image(out / entry["output_image"], channels=None)
    mask = read_mask(out / entry["output_mask"])
    assert image.shape == (512, 512, 1) and image.max() > 200 and np.median(image) < 60
    assert colours_of(mask) == {(0, 0, 0), (128, 40, 40)}
    # the mask is the slice's own: bone pixels are brighter than the slice on average
    bone = (mask == (128, 40, 40)).all(-1)
    assert image[..., 0][bone].mean() > 1.5 * image[..., 0].mean()


def test_real_nbm_mini_group_regex_keeps_groups_apart(tmp_path):
    """nbm-mini names carry no patient id; the first digit of the slice number stands in for one."""
    exp = load_experiment(
        REPO / "experiments" / "nbm.yaml",
        [
            f"split.images={NBM_MINI / 'images'}",
            f"split.masks={NBM_MINI / 'masks'}",
            r"split.group_pattern=\((\d)",
            f"data.root={tmp_path / 'nbm'}",
        ],
    )
    plan = plan_split(exp)
    assert len(plan.pairing.pairs) == 24
    homes: dict[str, set] = {}
    for g, place in zip(plan.groups, plan.assignment):
        homes.setdefault(g, set()).add(place)
    assert len(homes) >= 3 and all(len(p) == 1 for p in homes.values())
    result = write_split(exp, plan)
    # the JPEG-noisy masks come out in exactly the two class colours
    for mask in (result.output / "train" / "masks").iterdir():
        assert colours_of(read_mask(mask)) <= {(0, 0, 0), (255, 255, 255)}


def test_missing_source_folder_names_the_key_and_option(tmp_path):
    with pytest.raises(DataError, match=r"raw/images: folder not found; set split.images .* or pass --images DIR"):
        plan_split(experiment(tmp_path))
