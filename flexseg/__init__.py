"""flexseg: 2D multiclass segmentation with FlexUNet, driven by YAML experiments."""

__version__ = "0.1.0"
