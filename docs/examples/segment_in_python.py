# %% [markdown]
# # flexseg from Python
#
# A notebook-style script (each `# %%` is a cell for Jupyter, VS Code or Spyder): the built-in demo's
# data, a short training through `flexseg.api`, then a trained model segmenting images in memory with
# `flexseg.Predictor`. Run it as it is with `python docs/examples/segment_in_python.py`; it writes
# only under ./flexseg-example.

# %%
from pathlib import Path

import nibabel as nib
import numpy as np
from PIL import Image

from flexseg import Predictor, api

home = Path("flexseg-example").resolve()

# %% [markdown]
# ## Train: the commands as functions
# The shipped demo experiment, read as if it were `home/experiments/demo.yaml`: its data and run
# go under `home`. `api.demo` runs the whole pipeline; here it makes the data and trains 3 epochs.

# %%
result = api.demo(output=home, overrides=["train.epochs=3"])
run_dir = result.trained.run_dir
print(f"trained {result.trained.epochs_run} epochs in {result.trained.seconds:.0f} s → {run_dir}")
print(f"foreground Dice on the test split: {result.report.foreground_dice:.3f}")

# %% [markdown]
# The same steps one by one, each returning what the command prints:
#
# ```python
# exp = api.load_experiment("experiments/mine.yaml", ["train.epochs=20"])
# api.split(exp)                       # SplitResult: counts per split
# api.augment(exp)                     # [AugmentResult]
# report = api.stats(exp)              # StatsReport: problems, leakage
# trained = api.train(exp)             # TrainResult: run_dir, best_epoch, images_per_second
# scores = api.evaluate(exp)           # EvaluationReport: per_class, foreground_dice, images
# ```

# %% [markdown]
# ## Segment in memory
# Load the run once (one model, or a cross-validation's ensemble), then segment arrays as read
# from files: labels come back at the image's own size, exactly as `flexseg infer` writes them.

# %%
predictor = Predictor.load(run_dir)
print(predictor.card.class_names, f"{predictor.card.width}×{predictor.card.height}", predictor.precision)

image_path = sorted((home / "data" / "demo-raw" / "mini_test" / "images").glob("*.png"))[0]
image = np.asarray(Image.open(image_path))  # H×W×3 uint8
labels, probabilities = predictor.segment(image, probabilities=True)
print(image.shape, "→ labels", labels.shape, labels.dtype, "classes found:", np.unique(labels))
print("mean probability of each class:", probabilities.mean(axis=(0, 1)).round(3))

# a list is predicted in batches, as infer batches a folder
many = predictor.segment([np.asarray(Image.open(p)) for p in image_path.parent.glob("*.png")])
print(len(many), "masks")

# %% [markdown]
# ## A volume
# A nibabel image (its affine says how to cut the slices); the label volume comes back on the
# input's own grid, as a NIfTI image. A DICOM series: a folder path, or pydicom Datasets.

# %%
slices = np.stack([np.asarray(Image.open(p))[..., 0] for p in sorted(image_path.parent.glob("*.png"))[:4]])
scan = nib.Nifti1Image(np.ascontiguousarray(slices.transpose(2, 1, 0)), np.diag([0.8, 0.8, 2.5, 1.0]))
label_volume = predictor.segment(scan)
print(scan.shape, "→", label_volume.shape, label_volume.get_data_dtype())
