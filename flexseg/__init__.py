"""flexseg: 2D multiclass segmentation with FlexUNet, driven by YAML experiments.

Importing flexseg changes nothing in the process. TensorFlow's CPU settings are made by
``flexseg.tfenv.prepare`` when a flexseg package that uses TensorFlow is first imported."""

__version__ = "0.1.0"
