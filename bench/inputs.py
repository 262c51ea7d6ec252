"""Inputs for the benchmarks: the real nbm-mini slices (24 RGB 512×512 PNG pairs) when
../shared/datasets is there, else synthetic CT-like slices of the same size and kind."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATASETS = Path(os.environ.get("FLEXSEG_DATASETS", REPO.parent / "shared" / "datasets"))
NBM = REPO / "experiments" / "nbm.yaml"


def nbm_pairs(scratch: Path) -> list[tuple[Path, Path]]:
    """(image, mask) pairs at 512×512: nbm-mini's, or 24 synthetic ones written under ``scratch``."""
    from flexseg.data.pairing import pair_by_stem

    mini = DATASETS / "nbm-mini"
    if (mini / "images").is_dir():
        return pair_by_stem(mini / "images", mini / "masks")
    return synthetic_pairs(scratch / "synthetic", 24)


def synthetic_pairs(folder: Path, count: int, distinct: int = 24, size: int = 512) -> list[tuple[Path, Path]]:
    """``count`` pairs named slice_00000.png ...: ``distinct`` synthetic slices, the rest hard links
    to them (the decode cost is the same, the disk cost is not)."""
    import numpy as np

    from flexseg.data.classes import ClassMap
    from flexseg.data.io import write_image, write_palette_mask
    from flexseg.data.synthetic import synthetic_slice

    palette = ClassMap(["background", "bone", "lesion"], [(0, 0, 0), (255, 255, 255), (255, 0, 0)]).palette()
    rng = np.random.default_rng(0)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "masks").mkdir(parents=True, exist_ok=True)
    pairs = []
    for i in range(count):
        image, mask = folder / "images" / f"slice_{i:05d}.png", folder / "masks" / f"slice_{i:05d}.png"
        if i < distinct:
            pixels, labels = synthetic_slice(rng, size, size)
            write_image(image, pixels)
            write_palette_mask(mask, labels, palette)
        else:
            os.link(pairs[i % distinct][0], image)
            os.link(pairs[i % distinct][1], mask)
        pairs.append((image, mask))
    return pairs
