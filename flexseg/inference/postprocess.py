"""Post-processing of class-index masks and label volumes (numpy and scipy only)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from flexseg.errors import RunError

POSTPROCESSING_FILE = "postprocessing.json"  # the decision a cross-validation took (evaluation.postprocessing)


def postprocess(labels: np.ndarray, num_classes: int, largest_component: bool = False, min_size: int = 0) -> np.ndarray:
    """Per foreground class: keep only the largest connected component and/or drop components
    smaller than ``min_size`` pixels (voxels); removed pixels become background (class 0).
    Components are fully connected: 8 neighbours in 2D, 26 in 3D (a label volume)."""
    from scipy import ndimage

    if largest_component:
        labels = keep_largest(labels, classes=tuple(range(1, num_classes)))
    if min_size <= 0:
        return labels
    result = labels.copy()
    structure = np.ones((3,) * labels.ndim, bool)
    for c in range(1, num_classes):
        components, count = ndimage.label(labels == c, structure=structure)
        sizes = np.bincount(components.ravel(), minlength=count + 1)
        result[(components > 0) & (sizes[components] < min_size)] = 0
    return result


def keep_largest(labels: np.ndarray, together: bool = False, classes: tuple[int, ...] = ()) -> np.ndarray:
    """Keep only the largest connected component of all foreground together (``together``) and/or
    of each class in ``classes``; what is removed becomes background. Fully connected, in 2D for
    a mask and 3D for a label volume."""
    from scipy import ndimage

    result = labels.copy()
    structure = np.ones((3,) * labels.ndim, bool)
    for c in ([None] if together else []) + list(classes):
        components, count = ndimage.label(result > 0 if c is None else result == c, structure=structure)
        if count <= 1:
            continue
        sizes = np.bincount(components.ravel(), minlength=count + 1)[1:]
        result[(components > 0) & (components != sizes.argmax() + 1)] = 0
    return result


def read_decision(run_dir: Path) -> dict | None:
    """The post-processing decision recorded with a cross-validation's ensemble
    (``postprocessing.json``, written by ``flexseg evaluate``), or None when there is none."""
    path = run_dir / POSTPROCESSING_FILE
    if not path.is_file():
        return None
    try:
        decision = json.loads(path.read_text(encoding="utf-8"))
        return {
            "largest_component_of_foreground": bool(decision["largest_component_of_foreground"]),
            "largest_component_of_classes": [str(c) for c in decision["largest_component_of_classes"]],
        }
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise RunError(f"{path}: not a post-processing decision ({str(e)[:100]}); run flexseg evaluate again") from None
