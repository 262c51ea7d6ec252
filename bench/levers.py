"""What each training lever gives: steady-state training images/s of the NBM FlexUNet at 512×512,
batch 2, with one lever changed at a time, against this CPU's matmul rate.

    .venv/bin/python bench/levers.py [--rounds 3] [--precisions float32 bfloat16] [--levers ...]

Levers, each one change from flexseg as it is (``flexseg``):
  keras_adam       Keras' Adam instead of flexseg's fused one (TensorFlow's ResourceApplyAdam a variable)
  conv_everywhere  TensorFlow's convolution at every level, where flexseg computes the convolutions
                   of the 8×8 and 4×4 levels as matrix products (flexseg.model.matmul_conv)
  xla_optimizer    Keras' Adam update of all the variables compiled by XLA as one function
  xla_step         the whole train step compiled by XLA (``train.jit_compile: true``)

Each measurement is its own process (the levers are set before the model is built); the settings
run in turn, ``--rounds`` times, and each figure is the median of its rounds, as this host's
speed drifts by up to a third within minutes. That drift hides a few percent, so the settings
are also timed in one process, taking turns in blocks of steps over the same weights and batch
(``interleaved_steps``). A table on stderr, JSON on stdout.

Measured on 2026-12-02 and 2026-12-03 (AMD EPYC, 2 cores, avx512_bf16, no AMX): see
docs/performance.md. Kept: the fused Adam (flexseg.training.optimizer) and the matrix-product
convolutions of the deepest levels. Not kept: xla_step (half the speed: XLA's CPU convolutions are
not oneDNN's), xla_optimizer (no faster than the fused Adam in float32, slower in bfloat16, and it
would bypass the distribution strategy's update).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LEVERS = ("flexseg", "keras_adam", "conv_everywhere", "xla_optimizer", "xla_step")
POLICIES = {"float32": "none", "bfloat16": "bfloat16"}


def keras_adam(learning_rate, clipvalue):
    import keras

    return keras.optimizers.Adam(learning_rate=learning_rate, clipvalue=clipvalue)


def xla_adam(learning_rate, clipvalue):
    """Keras' Adam whose update of every variable (clipping included) is one XLA-compiled function."""
    import keras
    import tensorflow as tf

    class XlaAdam(keras.optimizers.Adam):
        def _backend_update_step(self, grads, trainable_variables, learning_rate):
            variables = [v.value if isinstance(v, keras.Variable) else v for v in trainable_variables]
            if not hasattr(self, "_compiled_update"):
                self._compiled_update = tf.function(self._update_all, jit_compile=True)
            if isinstance(learning_rate, keras.Variable):
                learning_rate = learning_rate.value
            self._compiled_update(list(grads), variables, tf.convert_to_tensor(learning_rate))

        def _update_all(self, grads, variables, learning_rate):
            for grad, variable in zip(grads, variables):
                self.update_step(grad, variable, learning_rate)

    return XlaAdam(learning_rate=learning_rate, clipvalue=clipvalue)


def convolutions_everywhere():
    """A context in which the FlexUNets flexseg builds or loads compute every level with TensorFlow's
    convolution."""
    from unittest import mock

    import flexseg.model.matmul_conv as matmul_conv

    return mock.patch.object(matmul_conv, "prefers_matmul", lambda height, width: False)


def one(lever: str, precision: str, warmup: int, steps: int) -> dict:
    """Measure one setting in this process."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from flexseg import console
    from flexseg.tfenv import import_tensorflow_quietly

    import_tensorflow_quietly()
    console.configure(quiet=True)
    import speed
    from inputs import NBM, nbm_pairs

    import flexseg.training.fit as fit
    from flexseg.config import load_experiment

    if lever == "keras_adam":
        fit.make_optimizer = keras_adam
    elif lever == "xla_optimizer":
        fit.make_optimizer = xla_adam
    overrides = [f"train.mixed_precision={POLICIES[precision]}", f"train.jit_compile={lever == 'xla_step'}"]
    with tempfile.TemporaryDirectory(prefix="flexseg-bench-levers-") as tmp:
        pairs = nbm_pairs(Path(tmp))
        exp = load_experiment(NBM, overrides)
        if lever == "conv_everywhere":
            with convolutions_everywhere():
                return speed.training_images_per_second(exp, pairs, warmup=warmup, steps=steps)
        return speed.training_images_per_second(exp, pairs, warmup=warmup, steps=steps)


def two_models(precision: str):
    """(experiment, flexseg's NBM model, the same model with TensorFlow's convolution at every
    level and the same weights), built in ``precision`` in this process."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from flexseg import console
    from flexseg.tfenv import import_tensorflow_quietly

    import_tensorflow_quietly()
    console.configure(quiet=True)
    from inputs import NBM

    from flexseg.config import load_experiment
    from flexseg.training.fit import build_in_precision

    exp = load_experiment(NBM, [f"train.mixed_precision={POLICIES[precision]}"])
    model = build_in_precision(exp)
    with convolutions_everywhere():
        conv_model = build_in_precision(exp)
    conv_model.set_weights(model.get_weights())
    return exp, model, conv_model


def in_turns(calls: dict, blocks: int, repeats: int) -> dict:
    """Each of ``calls`` (name → a function of no argument returning a tensor) timed in turns:
    ``blocks`` times, each call ``repeats`` times in a row; the median seconds of each."""
    times: dict = {name: [] for name in calls}
    for _ in range(blocks):
        for name, call in calls.items():
            for _ in range(repeats):
                t0 = time.perf_counter()
                call().numpy()
                times[name].append(time.perf_counter() - t0)
    return {
        name: {"median_step_seconds": statistics.median(t), "steps": [round(s, 3) for s in t]}
        for name, t in times.items()
    }


def interleaved_steps(precision: str, blocks: int = 4, steps: int = 3) -> dict:
    """Seconds a training step takes with each setting, in one process: the same weights and batch,
    one custom train step (forward, loss, gradients, update) a setting, the settings taking turns
    in blocks of ``steps`` steps, ``blocks`` times; the median step of each. The host's drift,
    which hides a few percent between processes, hits every setting alike here. Settings:
    ``flexseg``, ``keras_adam``, ``xla_optimizer`` (optimizers over flexseg's model) and
    ``conv_everywhere`` (a second model with TensorFlow's convolution at every level, the same
    weights, flexseg's optimizer)."""
    exp, model, conv_model = two_models(precision)
    import numpy as np
    import tensorflow as tf
    from inputs import nbm_pairs

    from flexseg.model.losses import get_loss
    from flexseg.training.optimizer import FusedAdam

    loss_fn = get_loss(exp.train.loss)
    with tempfile.TemporaryDirectory(prefix="flexseg-bench-levers-") as tmp:
        from flexseg.data.io import read_image, resize

        pairs = nbm_pairs(Path(tmp))[:2]
        x = np.stack([resize(read_image(p), 512, 512) for p, _ in pairs]).astype(np.float32)
    y = tf.one_hot(tf.zeros((2, 512, 512), tf.int32), exp.num_classes)

    def fused(lr, clip):
        return FusedAdam(learning_rate=lr, clipvalue=clip)

    settings = {
        "flexseg": (model, fused),
        "keras_adam": (model, keras_adam),
        "conv_everywhere": (conv_model, fused),
        "xla_optimizer": (model, xla_adam),
    }
    steps_of: dict = {}
    for name, (net, make) in settings.items():
        optimizer = make(exp.train.learning_rate, exp.train.clipvalue)
        optimizer.build(net.trainable_variables)

        def step(x, y, net=net, optimizer=optimizer):
            with tf.GradientTape() as tape:
                loss = loss_fn(y, net(x, training=True))
            optimizer.apply(tape.gradient(loss, net.trainable_variables), net.trainable_variables)
            return loss

        steps_of[name] = tf.function(step)
        steps_of[name](x, y).numpy()  # trace
    return in_turns({name: lambda step=step: step(x, y) for name, step in steps_of.items()}, blocks, steps)


def interleaved_predictions(precision: str, blocks: int = 4, calls: int = 3) -> dict:
    """Seconds a prediction of 4 NBM images takes, flexseg's model against ``conv_everywhere``'s
    with the same weights, taking turns in one process as ``interleaved_steps`` does."""
    _, model, conv_model = two_models(precision)
    import numpy as np
    import tensorflow as tf

    x = np.random.default_rng(0).uniform(0, 255, (4, 512, 512, 3)).astype(np.float32)
    predict = {
        name: tf.function(lambda x, net=net: net(x, training=False))
        for name, net in (("flexseg", model), ("conv_everywhere", conv_model))
    }
    for fn in predict.values():
        fn(x).numpy()  # trace
    return in_turns({name: lambda fn=fn: fn(x) for name, fn in predict.items()}, blocks, calls)


def interleaved(precisions: list[str]) -> dict:
    """``interleaved_steps`` (training) and ``interleaved_predictions`` for each precision, in child
    processes; shown as a table."""
    found: dict = {}
    for kind in ("--interleaved", "--interleaved-predict"):
        command = [sys.executable, __file__, kind, *precisions]
        done = subprocess.run(command, capture_output=True, text=True, check=True)  # noqa: S603 (our own script)
        figures = json.loads(done.stdout.strip().splitlines()[-1])
        what = "a training step" if kind == "--interleaved" else "a prediction of 4 images"
        for p, by_setting in figures.items():
            base = by_setting["flexseg"]["median_step_seconds"]
            for name, one in by_setting.items():
                seconds = one["median_step_seconds"]
                one["against_flexseg"] = round(seconds / base, 3)
                print(
                    f"  {p:<8} {name:<16} {seconds:6.2f} s {what}, in turns in one process "
                    f"(×{seconds / base:.3f} flexseg's)",
                    file=sys.stderr,
                )
        found["interleaved_steps" if kind == "--interleaved" else "interleaved_predictions"] = figures
    return found


def matmul_rates() -> dict:
    """{"float32": GFLOP/s, "bfloat16": GFLOP/s} of a 4096² matmul through TensorFlow, in a child process."""
    code = (
        "import json, sys; sys.path.insert(0, 'bench');"
        "from flexseg.tfenv import import_tensorflow_quietly; import_tensorflow_quietly();"
        "from run import tf_matmul_gflops;"
        "print(json.dumps({d: tf_matmul_gflops(d, 4096, 5) for d in ('float32', 'bfloat16')}))"
    )
    done = subprocess.run(  # noqa: S603 (our own code)
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=Path(__file__).parents[1]
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(rounds: int, precisions: list[str], levers: list[str], warmup: int = 2, steps: int = 4) -> dict:
    """Every (precision, lever) in turn, ``rounds`` times, and the matmul rate each round; medians."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from flops import conv_flops
    from inputs import NBM

    from flexseg.config import load_experiment
    from flexseg.model.flexunet import build_from_experiment

    flops = conv_flops(build_from_experiment(load_experiment(NBM, [])))
    runs: dict = {p: {lever: [] for lever in levers} for p in precisions}
    matmul: dict = {p: [] for p in precisions}
    for r in range(rounds):
        rates = matmul_rates()
        for p in precisions:
            matmul[p].append(rates[p])
        for p in precisions:
            for lever in levers:
                command = [sys.executable, __file__, "--one", lever, p, str(warmup), str(steps)]
                done = subprocess.run(command, capture_output=True, text=True)  # noqa: S603 (our own script)
                if done.returncode != 0:
                    runs[p][lever].append(None)
                    print(f"  round {r + 1} {p} {lever}: failed ({done.stderr.strip()[-300:]})", file=sys.stderr)
                    continue
                result = json.loads(done.stdout.strip().splitlines()[-1])
                runs[p][lever].append(result["images_per_second"])
                print(f"  round {r + 1} {p:<8} {lever:<16} {result['images_per_second']:.3f} img/s", file=sys.stderr)
    table: dict = {"forward_gflop_per_image": round(flops / 1e9, 2), "precisions": {}}
    for p in precisions:
        rate = statistics.median(matmul[p])
        table["precisions"][p] = {"matmul_gflops": round(rate, 1), "matmul_runs": [round(x, 1) for x in matmul[p]]}
        base = None
        for lever in levers:
            ok = [x for x in runs[p][lever] if x is not None]
            if not ok:
                table["precisions"][p][lever] = {"runs": runs[p][lever]}
                continue
            median = statistics.median(ok)
            base = base or (median if lever == "flexseg" else None)
            share = median * 3 * flops / 1e9 / rate
            table["precisions"][p][lever] = {
                "images_per_second": round(median, 4),
                "runs": [None if x is None else round(x, 4) for x in runs[p][lever]],
                "share_of_matmul_rate": round(share, 3),
                "against_flexseg": round(median / base, 3) if base else None,
            }
            print(
                f"  {p:<8} {lever:<16} {median:7.3f} img/s = {100 * share:4.1f}% of {rate:.0f} GFLOP/s"
                + (f", ×{median / base:.2f} flexseg's" if base else ""),
                file=sys.stderr,
            )
    return table


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--interleaved":
        print(json.dumps({p: interleaved_steps(p) for p in sys.argv[2:] or list(POLICIES)}))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--interleaved-predict":
        print(json.dumps({p: interleaved_predictions(p) for p in sys.argv[2:] or list(POLICIES)}))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--one":
        lever, precision, warmup, steps = sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
        print(json.dumps(one(lever, precision, warmup, steps)))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--precisions", nargs="+", choices=list(POLICIES), default=list(POLICIES))
    parser.add_argument("--levers", nargs="+", choices=LEVERS, default=list(LEVERS))
    args = parser.parse_args()
    print(json.dumps(measure(args.rounds, args.precisions, args.levers) | interleaved(args.precisions), indent=1))


if __name__ == "__main__":
    main()
