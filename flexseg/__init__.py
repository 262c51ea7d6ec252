"""flexseg: 2D multiclass segmentation with FlexUNet, driven by YAML experiments."""

import os

__version__ = "0.1.0"

# Read by TensorFlow when it loads, so set here, before any flexseg module imports it.
# BFC pools CPU tensor memory: with the default allocator every training step returns its
# large buffers to the kernel and faults them back in (NBM 512×512: 28 M page faults and
# 40% of the time in the kernel for 12 images; with BFC 1.2 M and twice the speed).
os.environ.setdefault("TF_CPU_ALLOCATOR_USE_BFC", "true")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's C++ start-up chatter
