"""TensorFlow's environment: importing it without its C++ start-up chatter on stderr; oneDNN."""

from __future__ import annotations

import os
import sys


def import_tensorflow_quietly() -> None:
    """TensorFlow's absl logger prints CUDA-probe lines before TF_CPP_MIN_LOG_LEVEL applies;
    hide stderr (the file descriptor) for the import only. An import failure still raises."""
    if "tensorflow" in sys.modules:
        return

    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import keras  # noqa: F401
        import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def onednn_enabled() -> bool:
    """Whether TensorFlow runs its oneDNN kernels (flexseg/__init__.py turns them on)."""
    from tensorflow.python.util import _pywrap_util_port

    return bool(_pywrap_util_port.IsMklEnabled())
