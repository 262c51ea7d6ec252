"""TensorFlow's environment: importing it without its C++ start-up chatter on stderr; oneDNN."""

from __future__ import annotations

import os
import sys


def prepare() -> None:
    """TensorFlow's CPU settings, read when it loads: call before the first ``import tensorflow``
    (the packages that use it, data/, model/, training/ and commands/, do so in their __init__).
    A value the user set wins."""
    # BFC pools CPU tensor memory: with the default allocator every training step returns its
    # large buffers to the kernel and faults them back in (NBM 512×512: 28 M page faults and
    # 40% of the time in the kernel for 12 images; with BFC 1.2 M and twice the speed).
    os.environ.setdefault("TF_CPU_ALLOCATOR_USE_BFC", "true")
    # TensorFlow turns oneDNN on by itself only on CPUs with AVX-512 VNNI/BF16 or AMX. On the
    # others (AVX2 EPYC) its stock convolution gradients are 4-7× slower: NBM 512×512 training
    # went from 9.8 to 13.4 s a step without it (bench/run.py measures both).
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")


def quiet_tensorflow_logging() -> None:
    """For the command line only: TensorFlow's C++ start-up chatter. A library user's logging is
    left as it is."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


_quiet_import = False


def hide_import_chatter() -> None:
    """For the command line: the first ``load_tensorflow`` imports TensorFlow with stderr hidden."""
    global _quiet_import
    _quiet_import = True


def load_tensorflow() -> None:
    """Call before flexseg first imports TensorFlow or Keras (modules that import them at the top
    do so first): the CPU settings, and for the command line a quiet import. TensorFlow is loaded
    only where it is used, so a command that fails on its input says so in a fraction of a
    second, without the 3 s of loading TensorFlow."""
    if "tensorflow" in sys.modules:
        return
    if _quiet_import:
        import_tensorflow_quietly()
    else:
        prepare()


def import_tensorflow_quietly() -> None:
    """TensorFlow's absl logger prints CUDA-probe lines before TF_CPP_MIN_LOG_LEVEL applies;
    hide stderr (the file descriptor) for the import only. An import failure still raises."""
    if "tensorflow" in sys.modules:
        return
    prepare()  # its settings are read at import: a caller that comes here first must still get them
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
    # its Python logger's advice (an ensemble's models each trace their predict function once,
    # which it reports as "retracing") is for TensorFlow programmers, not for a command's user
    import logging

    logging.getLogger("tensorflow").setLevel(logging.ERROR)


def onednn_enabled() -> bool:
    """Whether TensorFlow runs its oneDNN kernels (``prepare`` turns them on)."""
    from tensorflow.python.util import _pywrap_util_port

    return bool(_pywrap_util_port.IsMklEnabled())
