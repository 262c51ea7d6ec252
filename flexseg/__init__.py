"""flexseg: 2D multiclass segmentation with FlexUNet, driven by YAML experiments."""

import os

__version__ = "0.1.0"

# Read by TensorFlow when it loads, so set here, before any flexseg module imports it.
# BFC pools CPU tensor memory: with the default allocator every training step returns its
# large buffers to the kernel and faults them back in (NBM 512×512: 28 M page faults and
# 40% of the time in the kernel for 12 images; with BFC 1.2 M and twice the speed).
os.environ.setdefault("TF_CPU_ALLOCATOR_USE_BFC", "true")
# TensorFlow turns oneDNN on by itself only on CPUs with AVX-512 VNNI/BF16 or AMX. On the
# others (this AVX2 EPYC) its stock convolution gradients are 4-7× slower: NBM 512×512
# training went from 9.8 to 13.4 s a step without it (bench/run.py measures both).
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's C++ start-up chatter
