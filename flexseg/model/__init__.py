"""The model: FlexUNet, losses, metrics, prediction in batches, the run folder's model files."""

from flexseg import tfenv

tfenv.prepare()  # before any module here imports TensorFlow
