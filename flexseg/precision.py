"""The floating-point precision a model computes in, chosen by what the hardware does fast.

``auto`` picks bfloat16 where the hardware has it natively: CPUs with AVX512-BF16 or AMX-BF16
(measured on such a host: NBM training 1.30×, inference 1.6× the float32 speed; on an AVX2-only
CPU bfloat16 is emulated and 12× slower) and GPUs of compute capability 8.0 or more (Ampere);
float16 on older GPUs with tensor cores (7.x); float32 everywhere else. Training computes in the
chosen type with float32 weights (Keras mixed precision; float16 with a loss-scale optimizer);
inference casts a model's weights once, at load.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

PRECISIONS = ("float32", "bfloat16", "float16")
CPU_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})
GPU_BF16 = (8, 0)  # compute capability from which a GPU computes bfloat16 natively (Ampere)
GPU_FLOAT16 = (7, 0)  # tensor cores (Volta)


@dataclass(frozen=True)
class Hardware:
    """What decides the precision: the GPUs TensorFlow sees (their compute capabilities; None
    when unknown) and the CPU's feature flags."""

    gpus: tuple[tuple[int, int] | None, ...] = ()
    cpu_flags: frozenset[str] = field(default_factory=frozenset)

    def describe(self) -> str:
        if self.gpus:
            caps = ", ".join("?" if c is None else f"{c[0]}.{c[1]}" for c in self.gpus)
            return f"{len(self.gpus)} GPU(s), compute capability {caps}"
        fast = sorted(self.cpu_flags & CPU_BF16_FLAGS)
        return f"CPU with {' and '.join(fast)}" if fast else "CPU without bfloat16 instructions (AVX2 or older)"


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """The CPU's feature flags (Linux); empty where they cannot be read."""
    try:
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith("flags"):
                return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def detect() -> Hardware:
    """This machine, as TensorFlow sees it (loads TensorFlow)."""
    from flexseg import tfenv

    tfenv.load_tensorflow()
    import tensorflow as tf

    gpus = []
    for device in tf.config.list_physical_devices("GPU"):
        try:
            capability = tf.config.experimental.get_device_details(device).get("compute_capability")
        except (ValueError, RuntimeError, TypeError):
            capability = None
        gpus.append(tuple(capability) if capability else None)
    return Hardware(gpus=tuple(gpus), cpu_flags=cpu_flags())


def choose(requested: str, hardware: Hardware) -> str:
    """The precision to compute in: ``requested`` itself, or for ``auto`` the fastest type the
    hardware computes natively (see the module's text). ``none`` (train.mixed_precision) is float32."""
    if requested == "none":
        return "float32"
    if requested != "auto":
        return requested
    if hardware.gpus:
        if all(c is not None and c >= GPU_BF16 for c in hardware.gpus):
            return "bfloat16"
        if all(c is not None and c >= GPU_FLOAT16 for c in hardware.gpus):
            return "float16"
        return "float32"
    return "bfloat16" if hardware.cpu_flags & CPU_BF16_FLAGS else "float32"


def resolve(requested: str, setting: str) -> str:
    """``choose`` on this machine; an explicit ``requested`` that the hardware only emulates is
    warned about, naming the ``setting`` it came from."""
    from flexseg import console as out

    hardware = detect()
    precision = choose(requested, hardware)
    if requested != "auto" and (warning := slow_choice(precision, hardware)):
        out.warn(f"{setting}: {warning}")
    return precision


def slow_choice(precision: str, hardware: Hardware) -> str | None:
    """A warning when an explicitly asked precision is emulated on this hardware, else None."""
    if hardware.gpus or precision == "float32":
        return None
    if precision == "bfloat16" and not hardware.cpu_flags & CPU_BF16_FLAGS:
        return "bfloat16 on a CPU without AVX512-BF16/AMX is emulated (about 12× slower than float32); use auto"
    if precision == "float16":
        return "float16 on a CPU is emulated (much slower than float32); use auto"
    return None
