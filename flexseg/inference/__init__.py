"""The predictor: one model or an ensemble, precision, test-time augmentation, tiles, volumes and
post-processing, in one place that `infer`, `evaluate`, epoch-change inference and `export` use."""

from flexseg.inference.postprocess import postprocess
from flexseg.inference.predictor import PredictOptions, Predictor

__all__ = ["PredictOptions", "Predictor", "postprocess"]
