"""`train fit --strategy`: the tf.distribute strategy, and which process writes RUN_DIR.

- `auto` (default): MirroredStrategy over this machine's GPUs when it has several, else
  TensorFlow's default strategy.
- `multiworker`: MultiWorkerMirroredStrategy over the machines listed in TF_CONFIG (the same
  `train fit` command on every machine, each with its own `task`). Every worker trains and saves
  its checkpoints (saving reads replicated variables, which is a collective step: a worker that
  skipped it would stall the others), but only the chief writes RUN_DIR; the other workers write
  to a scratch folder that is removed (train.fit.worker_work_dir), as TensorFlow's
  multi-worker guide advises.

TF_CONFIG is parsed here (json only, no TensorFlow) so a bad one is a one-line error before
anything is written; TensorFlow is imported only to make the strategy.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass

from edge.errors import ConfigError, ModelError

log = logging.getLogger(__name__)

STRATEGIES = ("auto", "multiworker")
TASK_TYPES = ("chief", "worker")
EXAMPLE = ('{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
           '"task": {"type": "worker", "index": 0}}')


@dataclass(frozen=True)
class WorkerRole:
    """This process's place in the cluster: the chief writes RUN_DIR, the others only train."""

    task_type: str = "chief"
    task_index: int = 0
    num_workers: int = 1
    multiworker: bool = False
    has_chief_task: bool = False
    addresses: tuple[str, ...] = ()  # every task's host:port, chief first

    @property
    def is_chief(self) -> bool:
        # TensorFlow's rule: the "chief" task, or worker 0 when the cluster names no chief
        return self.task_type == "chief" or (self.task_type == "worker" and self.task_index == 0
                                             and not self.has_chief_task)

    def describe(self) -> str:
        role = "chief" if self.is_chief else "non-chief"
        return f"{self.task_type} {self.task_index} of {self.num_workers} workers ({role})"


def worker_role(strategy: str, environ=None) -> WorkerRole:
    """The role for `--strategy` (TF_CONFIG read only for multiworker); ConfigError if bad."""
    if strategy not in STRATEGIES:
        raise ConfigError(f"--strategy {strategy!r}: choose one of {', '.join(STRATEGIES)}")
    if strategy != "multiworker":
        return WorkerRole()
    environ = os.environ if environ is None else environ
    return parse_tf_config(environ.get("TF_CONFIG"))


def parse_tf_config(text: str | None) -> WorkerRole:
    if not text or not text.strip():
        raise ConfigError(f"--strategy multiworker needs TF_CONFIG on every machine, e.g. "
                          f"TF_CONFIG='{EXAMPLE}' (docs/training.md)")
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"TF_CONFIG is not valid JSON: {exc.msg} at character {exc.pos}"
                          ) from None
    if not isinstance(raw, dict):
        raise ConfigError("TF_CONFIG must be a JSON object with \"cluster\" and \"task\"")
    cluster = _cluster(raw.get("cluster"))
    task = raw.get("task")
    if not isinstance(task, dict):
        raise ConfigError("TF_CONFIG has no \"task\" object, e.g. {\"type\": \"worker\", "
                          "\"index\": 0}")
    task_type, index = task.get("type"), task.get("index", 0)
    if task_type not in cluster:
        raise ConfigError(f"TF_CONFIG task.type {task_type!r} is not a task type of the cluster "
                          f"({', '.join(cluster)})")
    if not isinstance(index, int) or isinstance(index, bool) or not (
            0 <= index < len(cluster[task_type])):
        raise ConfigError(f"TF_CONFIG task.index {index!r} is out of range: cluster.{task_type} "
                          f"has {len(cluster[task_type])} address(es)")
    addresses = tuple(a for kind in TASK_TYPES for a in cluster.get(kind, []))
    return WorkerRole(task_type, index, len(addresses), True, has_chief_task="chief" in cluster,
                      addresses=addresses)


def _cluster(cluster) -> dict[str, list[str]]:
    if not isinstance(cluster, dict) or not cluster:
        raise ConfigError(f"TF_CONFIG has no \"cluster\" object, e.g. {EXAMPLE}")
    for task_type, addresses in cluster.items():
        if task_type not in TASK_TYPES:
            raise ConfigError(f"TF_CONFIG cluster.{task_type}: only {' and '.join(TASK_TYPES)} "
                              "tasks take part in MultiWorkerMirroredStrategy")
        if not isinstance(addresses, list) or not addresses:
            raise ConfigError(f"TF_CONFIG cluster.{task_type} must be a list of \"host:port\"")
        for i, address in enumerate(addresses):
            host, _, port = str(address).rpartition(":")
            if not isinstance(address, str) or not host or not port.isdigit():
                raise ConfigError(f"TF_CONFIG cluster.{task_type}[{i}] = {address!r} is not "
                                  "\"host:port\"")
    if len(cluster.get("chief", [])) > 1:
        raise ConfigError("TF_CONFIG cluster.chief has more than one address; there is one chief")
    return cluster


def check_batch(role: WorkerRole, batch_size: int, replicas: int | None = None) -> None:
    """The global batch is split evenly over the replicas: before the strategy exists at least
    over the workers; once it does (`replicas`: strategy.num_replicas_in_sync) over every
    worker's GPUs, workers x GPUs per worker."""
    if role.num_workers > 1 and batch_size % role.num_workers:
        raise ConfigError(f"--batch-size {batch_size} does not split over {role.num_workers} "
                          "workers; use a multiple of the worker count")
    if role.multiworker and replicas and replicas > 1 and batch_size % replicas:
        raise ConfigError(f"--batch-size {batch_size} does not split over {replicas} replicas "
                          f"({role.num_workers} workers x their GPUs); use a multiple of "
                          f"{replicas}")


def make_strategy(role: WorkerRole):
    """The tf.distribute strategy; call before any other TensorFlow work in the process
    (MultiWorkerMirroredStrategy configures the collective ops, which must come first)."""
    import tensorflow as tf  # noqa: PLC0415

    if role.multiworker:
        log.info("MultiWorkerMirroredStrategy: this process is %s; waiting until every worker "
                 "of TF_CONFIG has connected (%s)", role.describe(), ", ".join(role.addresses))
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    if len(gpus) > 1:
        log.info("training on %d GPUs with MirroredStrategy", len(gpus))
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def shard_by_data(dataset):
    """Every worker builds the same batches and keeps its share of each global batch.

    The datasets come from Python generators (no files to shard by), so TensorFlow's automatic
    policy would fall back to DATA anyway, with a warning; set it. With DATA a worker takes its
    slice of every global batch, so two workers train on exactly the crops one worker would.
    """
    import tensorflow as tf  # noqa: PLC0415

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)



def adapt_for_multiworker(model, dataset, num_workers: int) -> None:
    """Work around two Keras 3 gaps under MultiWorkerMirroredStrategy (keras-team/keras#20585).

    - Keras builds a model under a strategy from the first batch of the distributed dataset,
      averaged over the replicas with strategy.reduce, which fails on a (tiles, labels) tuple
      ("unsupported type PerReplica") and would also take one batch off the crop stream. Shapes
      and dtypes are all the build needs: build from the dataset's element spec instead.
    - BatchNorm layers are synchronised over the workers (`synchronise_batch_norm`).
    - Keras reduces each step's logs over the workers with strategy.reduce("MEAN", axis=0),
      which fails on the scalar logs. The logs are metric results, already equal on every
      replica (metric variables sum their updates over replicas), so they are returned as
      one-element vectors, whose mean over axis 0 is that same scalar.
    """
    import keras  # noqa: PLC0415

    if not all(callable(getattr(model, name, None))
               for name in ("_symbolic_build", "_maybe_symbolic_build")):
        raise ModelError(f"--strategy multiworker: Keras {keras.__version__} changed the internals "
                         "train.distribute works around (tested with Keras 3.15)")
    synchronise_batch_norm(model)
    spec = tuple(keras.KerasTensor(s.shape, s.dtype.name) for s in dataset.element_spec)

    def symbolic_build(iterator=None, data_batch=None):
        with model.distribute_strategy.scope():
            model._symbolic_build(data_batch=spec)  # noqa: SLF001

    symbolic_build()
    model._maybe_symbolic_build = symbolic_build  # noqa: SLF001
    if num_workers > 1:  # a one-worker cluster reduces locally, where scalars are right
        model.train_step = _logs_as_vectors(model.train_step)
        model.test_step = _logs_as_vectors(model.test_step)


def synchronise_batch_norm(model) -> int:
    """BatchNorm statistics over the global batch, as on one machine, rather than over each
    worker's share: with the paper's batch of 16 on two workers a replica sees only 8 crops, and
    per-replica statistics would make the multi-worker run train a different model. Costs one
    small all-reduce per BatchNorm layer and step. Returns the number of layers changed."""
    import keras  # noqa: PLC0415

    changed, stack = 0, list(model.layers)
    while stack:
        layer = stack.pop()
        stack.extend(getattr(layer, "layers", []))
        if isinstance(layer, keras.layers.BatchNormalization) and not layer.synchronized:
            layer.synchronized = True
            changed += 1
    return changed


def _logs_as_vectors(step):
    import tensorflow as tf  # noqa: PLC0415

    def step_with_vector_logs(data):
        return {name: tf.reshape(value, [1]) for name, value in step(data).items()}

    return step_with_vector_logs
