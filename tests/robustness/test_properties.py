"""Property-based tests (hypothesis) for the class-colour mapping and the pairing rules."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from flexseg.data.classes import ClassMap
from flexseg.data.pairing import natural_key, pair_files

colours = st.tuples(*[st.integers(0, 255)] * 3)


@settings(max_examples=60, deadline=None)
@given(st.lists(colours, min_size=2, max_size=6, unique=True), st.data())
def test_every_pixel_maps_to_its_nearest_class_colour(palette, data):
    class_map = ClassMap([f"c{i}" for i in range(len(palette))], palette)
    mask = np.array(data.draw(st.lists(st.lists(colours, min_size=3, max_size=3), min_size=1, max_size=4)), np.uint8)
    indices = class_map.to_indices(mask).indices
    distances = ((mask[..., None, :].astype(int) - np.array(palette)[None, None]) ** 2).sum(-1)
    chosen = np.take_along_axis(distances, indices[..., None].astype(int), -1)[..., 0]
    assert (chosen == distances.min(-1)).all()  # no class colour is nearer than the chosen one


@settings(max_examples=60, deadline=None)
@given(st.lists(colours, min_size=2, max_size=6, unique=True), st.data())
def test_exact_class_colours_round_trip(palette, data):
    class_map = ClassMap([f"c{i}" for i in range(len(palette))], palette)
    labels = np.array(data.draw(st.lists(st.integers(0, len(palette) - 1), min_size=1, max_size=30)), np.uint8)[None]
    conversion = class_map.to_indices(np.array(palette, np.uint8)[labels])
    assert (conversion.indices == labels).all() and conversion.far_pixels == 0


names = st.text(alphabet="abcXYZ _-()éü0123456789", min_size=1, max_size=12).filter(lambda s: s.strip() == s)


@settings(max_examples=80, deadline=None)
@given(st.sets(names, max_size=12), st.sets(names, max_size=12))
def test_stem_pairing_pairs_exactly_the_shared_stems(image_stems, mask_stems):
    images = [Path("img") / f"{s}.png" for s in image_stems]
    masks = [Path("msk") / f"{s}.png" for s in mask_stems]
    pairing = pair_files(images, masks, "stem")
    assert {(i.stem, m.stem) for i, m in pairing.pairs} == {(s, s) for s in image_stems & mask_stems}
    assert {p.stem for p in pairing.lonely_images} == image_stems - mask_stems
    assert {p.stem for p in pairing.lonely_masks} == mask_stems - image_stems
    assert pairing.complete == (image_stems == mask_stems)


@settings(max_examples=80, deadline=None)
@given(st.lists(st.integers(0, 10_000), min_size=1, max_size=15, unique=True), st.integers(0, 50))
def test_natural_pairing_follows_number_order_not_string_order(numbers, offset):
    images = [Path(f"slice_{n}.png") for n in numbers]
    masks = [Path(f"Mask_{n + offset:05d}.png") for n in reversed(numbers)]
    pairing = pair_files(images, masks, "natural")
    assert pairing.complete
    assert [(int(i.stem.split("_")[1]) + offset, int(m.stem.split("_")[1])) for i, m in pairing.pairs] == [
        (n + offset, n + offset) for n in sorted(numbers)
    ]
    assert sorted(numbers, key=lambda n: natural_key(f"x{n}")) == sorted(numbers)
