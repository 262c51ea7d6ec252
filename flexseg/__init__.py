"""flexseg: 2D multiclass segmentation with FlexUNet, driven by YAML experiments.

The Python API: ``flexseg.api`` (the commands as functions returning typed results) and
``flexseg.Predictor`` (a trained run loaded once, segmenting arrays, files, nibabel images and
DICOM series in memory). Both load on first use: ``import flexseg`` alone imports neither
TensorFlow nor OpenCV.

Importing flexseg changes nothing in the process. TensorFlow's CPU settings are made by
``flexseg.tfenv.prepare`` when a flexseg package that uses TensorFlow is first imported."""

__version__ = "0.1.0"

__all__ = ["Predictor", "PredictOptions", "__version__", "api"]


def __getattr__(name: str) -> object:
    """``flexseg.Predictor``, ``flexseg.PredictOptions`` and ``flexseg.api``, imported when first used."""
    if name in ("Predictor", "PredictOptions"):
        from flexseg import inference

        return getattr(inference, name)
    if name == "api":
        import importlib

        return importlib.import_module("flexseg.api")
    raise AttributeError(f"module 'flexseg' has no attribute {name!r}")
