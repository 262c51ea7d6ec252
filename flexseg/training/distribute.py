"""train.distribute: which tf.distribute strategy a run uses, and which process is the chief.

- ``none``: TensorFlow's default strategy (one device; all CPU cores).
- ``mirrored``: MirroredStrategy over this machine's GPUs (or its CPU when it has none).
- ``multi_worker``: MultiWorkerMirroredStrategy over the machines named in ``TF_CONFIG``;
  synchronous data parallelism, gradients all-reduced every step.
- ``auto``: multi_worker when ``TF_CONFIG`` names more than one task, mirrored when more than
  one GPU is visible, else none.

Only the chief (the ``chief`` task, or worker 0 when the cluster has no chief) writes the run
folder; the other workers train and write nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from flexseg import tfenv  # noqa: I001 (TensorFlow's settings before it loads)

tfenv.load_tensorflow()

import tensorflow as tf

from flexseg import settings
from flexseg.errors import ConfigError

if TYPE_CHECKING:
    import keras


@dataclass
class Distribution:
    strategy: tf.distribute.Strategy
    kind: str  # none | mirrored | multi_worker
    is_chief: bool
    workers: int
    task: str  # e.g. "worker 1", "" when not multi_worker

    @property
    def replicas(self) -> int:
        return self.strategy.num_replicas_in_sync

    def global_batch(self, per_replica: int) -> int:
        return per_replica * self.replicas

    def describe(self) -> str:
        if self.kind == "none":
            return "one device"
        if self.kind == "mirrored":
            return f"MirroredStrategy, {self.replicas} replica(s)"
        return f"MultiWorkerMirroredStrategy, {self.workers} workers, {self.replicas} replicas; this is {self.task}"


def read_tf_config() -> dict | None:
    """TF_CONFIG as a dict, None when unset; a ConfigError says what is wrong with it."""
    raw = settings.tf_config_text()
    if not raw:
        return None
    example = '{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}'
    try:
        config = json.loads(raw)
    except ValueError as e:
        raise ConfigError(f"TF_CONFIG is not valid JSON ({e}); it looks like {example}") from None
    cluster, task = config.get("cluster"), config.get("task")
    if not isinstance(cluster, dict) or not isinstance(task, dict) or "type" not in task or "index" not in task:
        raise ConfigError(f"TF_CONFIG needs 'cluster' and 'task' {{type, index}}, e.g. {example}")
    members = cluster.get(task["type"])
    if not isinstance(members, list) or not 0 <= int(task["index"]) < len(members):
        raise ConfigError(f"TF_CONFIG: task {task['type']} {task['index']} is not in cluster {cluster}")
    return config


def cluster_size(config: dict) -> int:
    return sum(len(v) for k, v in config["cluster"].items() if k in ("chief", "worker"))


def is_chief_task(config: dict) -> bool:
    task_type, index = config["task"]["type"], int(config["task"]["index"])
    if "chief" in config["cluster"]:
        return task_type == "chief"
    return task_type == "worker" and index == 0


def choose(mode: str) -> str:
    """The strategy kind ``mode`` (train.distribute) stands for on this machine."""
    if mode != "auto":
        return mode
    config = read_tf_config()
    if config is not None and cluster_size(config) > 1:
        return "multi_worker"
    return "mirrored" if len(tf.config.list_physical_devices("GPU")) > 1 else "none"


def make_distribution(mode: str) -> Distribution:
    """Create the strategy. Call before any other TensorFlow work: MultiWorkerMirroredStrategy
    must be set up before TensorFlow's runtime starts."""
    kind = choose(mode)
    if kind == "none":
        return Distribution(tf.distribute.get_strategy(), "none", True, 1, "")
    if kind == "mirrored":
        return Distribution(tf.distribute.MirroredStrategy(), "mirrored", True, 1, "")
    config = read_tf_config()
    if config is None:
        raise ConfigError(
            "train.distribute: multi_worker needs TF_CONFIG in the environment of every worker, "
            'e.g. TF_CONFIG=\'{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
            '"task": {"type": "worker", "index": 0}}\' (see docs/commands.md, several machines)'
        )
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    task = f"{config['task']['type']} {config['task']['index']}"
    return Distribution(strategy, "multi_worker", is_chief_task(config), cluster_size(config), task)


def work_around_keras_symbolic_build(model: keras.Model, strategy: tf.distribute.Strategy) -> None:
    """Let ``model.fit`` take a distributed dataset whose batches are (image, mask) pairs.

    Before the first step Keras 3 builds the model's metrics from one batch, and under a
    multi-device strategy it merges that batch with ``strategy.reduce`` — which accepts a
    single value, not an (image, mask) pair, so fit fails with "Attempt to convert a value
    (PerReplica ...)" (keras-team/keras#20585). Only the batch's shapes and dtypes matter
    there, so this takes this replica's part of each tensor instead.
    """
    from keras.src import tree

    if not hasattr(model, "_maybe_symbolic_build") or not hasattr(model, "_symbolic_build"):
        return  # a Keras without the step this works around

    def local(value: object):
        return (
            strategy.experimental_local_results(value)[0]
            if isinstance(value, tf.distribute.DistributedValues)
            else value
        )

    def symbolic_build(iterator: object = None, data_batch: object = None) -> None:
        if iterator is not None:
            for _, _, it in iterator:
                data_batch = tree.map_structure(local, next(it))
                break
        with strategy.scope():
            model._symbolic_build(data_batch=data_batch)

    model._maybe_symbolic_build = symbolic_build


def reduce_metrics_across_workers(model: keras.Model) -> None:
    """Make ``model.fit`` able to average its loss and metrics over the workers.

    Keras 3 averages each step's metric values over replicas with ``strategy.reduce("MEAN",
    value, axis=0)``, which under MultiWorkerMirroredStrategy fails for the scalars
    ``train_step`` returns ("Invalid reduction dimension 0 for input with 0 dimensions").
    Giving each value a leading axis of one (train_step and test_step are Keras's documented
    points to customise) makes that reduce concatenate the replicas' values and average them:
    every worker then sees the same loss and metrics, the mean over all its shards (they are
    the same size). Validation runs on the whole validation set on every worker, so its mean
    is the value on that set.
    """
    from keras import ops

    train_step, test_step = model.train_step, model.test_step

    def with_replica_axis(logs: dict | None):
        return {name: ops.expand_dims(value, 0) for name, value in logs.items()}

    model.train_step = lambda data: with_replica_axis(train_step(data))
    model.test_step = lambda data: with_replica_axis(test_step(data))
