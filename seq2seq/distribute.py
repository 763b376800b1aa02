"""Training on several devices and machines with ``tf.distribute``.

``train.distribution`` chooses the strategy the model is built, compiled and
fitted under:

- "none": the default strategy (one device).
- "mirrored": ``tf.distribute.MirroredStrategy`` over every GPU of the machine
  (or, with ``devices``, the devices named, e.g. logical CPUs). Each global
  batch of ``train.batch_size`` pairs is split evenly between the replicas
  (the split of an odd batch differs by one pair), gradients are summed
  across replicas, and the loss is the mean over the real target tokens of
  the whole global batch, as on one device (see
  ``seq2seq.metrics.MaskedSparseCrossEntropy``).
- "multi_worker": ``tf.distribute.MultiWorkerMirroredStrategy`` over several
  processes (machines), each with every GPU it has (or its CPU), described
  by the ``TF_CONFIG`` environment variable (see ``read_tf_config``). The
  strategy must exist before any other TensorFlow op runs in the process:
  ``seq2seq.training.train`` makes it first thing (and the command line
  before reading data). Every worker builds the same global batches and
  keeps its replicas' rows (``distribute_batches``); only the chief writes
  to the model directory (``worker_dir``).

Checkpoints hold plain variables, so a model directory trained on one
device resumes on several and the other way round.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence

import keras
import tensorflow as tf

from seq2seq.config import DISTRIBUTIONS, ConfigError
from seq2seq.vocab import PAD_ID

TF_CONFIG_VARIABLE = "TF_CONFIG"
# Task types that train under MultiWorkerMirroredStrategy ("chief" is worker 0 when present).
WORKER_TASK_TYPES = ("chief", "worker")
_TF_CONFIG_EXAMPLE = (
    '{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
    '"task": {"type": "worker", "index": 0}}'
)
# The process-wide MultiWorkerMirroredStrategy: collectives are set up once per process.
_multi_worker_strategy: tf.distribute.MultiWorkerMirroredStrategy | None = None


@dataclasses.dataclass(frozen=True)
class WorkerTask:
    """This process' place in the cluster of ``TF_CONFIG``.

    Attributes:
        task_type: "chief" or "worker".
        index: index of the task in its type's address list.
        num_workers: processes that train: the chief (if any) and the workers.
        is_chief: whether this task writes the model directory: the "chief"
            task, or worker 0 when the cluster has no chief.
    """

    task_type: str
    index: int
    num_workers: int
    is_chief: bool


def _tf_config_error(what: str, value: object) -> ConfigError:
    return ConfigError(
        f"{what} in the {TF_CONFIG_VARIABLE} environment variable "
        f"(train.distribution='multi_worker'). Received: {value}. Example: "
        f"{TF_CONFIG_VARIABLE}='{_TF_CONFIG_EXAMPLE}'"
    )


def _check_address(task_type: str, index: int, address: object) -> None:
    """Checks one "host:port" address of the cluster."""
    host, _, port = address.rpartition(":") if isinstance(address, str) else ("", "", "")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise _tf_config_error(
            'Expected "host:port" addresses', f"cluster.{task_type}[{index}]={address!r}"
        )


def read_tf_config(environ: Mapping[str, str] | None = None) -> WorkerTask:
    """Validates ``TF_CONFIG`` for multi-worker training and returns this task.

    ``TF_CONFIG`` is a JSON object: ``cluster`` maps task types ("chief",
    "worker") to lists of "host:port" addresses, the same on every machine;
    ``task`` names this process' type and index.

    Args:
        environ: the environment to read (default: ``os.environ``).

    Returns:
        The ``WorkerTask`` of this process.

    Raises:
        ConfigError: naming the variable and the bad key or value: unset, not
            JSON, no ``cluster`` or ``task``, an unknown task type, an index
            out of range, a bad address, or no worker at all.
    """
    environ = os.environ if environ is None else environ
    text = environ.get(TF_CONFIG_VARIABLE, "")
    if not text.strip():
        raise _tf_config_error("Expected the cluster description", f"{TF_CONFIG_VARIABLE} unset")
    try:
        spec = json.loads(text)
    except json.JSONDecodeError as error:
        raise _tf_config_error(f"Expected JSON ({error})", repr(text)) from None
    if not isinstance(spec, dict):
        raise _tf_config_error("Expected a JSON object", repr(text))
    cluster = spec.get("cluster")
    if not isinstance(cluster, dict):
        raise _tf_config_error(
            'Expected a "cluster" object of task types and addresses', f"cluster={cluster!r}"
        )
    for task_type, addresses in cluster.items():
        if task_type not in WORKER_TASK_TYPES:
            raise _tf_config_error(
                f"Expected only task types {list(WORKER_TASK_TYPES)} in the cluster "
                "(MultiWorkerMirroredStrategy has no parameter servers or evaluators)",
                f"cluster.{task_type}",
            )
        if not isinstance(addresses, list):
            raise _tf_config_error(
                "Expected a list of addresses", f"cluster.{task_type}={addresses!r}"
            )
        for index, address in enumerate(addresses):
            _check_address(task_type, index, address)
    if len(cluster.get("chief", [])) > 1:
        raise _tf_config_error("Expected at most one chief", f"cluster.chief={cluster['chief']!r}")
    num_workers = sum(len(cluster.get(t, [])) for t in WORKER_TASK_TYPES)
    if num_workers < 1:
        raise _tf_config_error("Expected at least 1 worker", f"cluster={cluster!r}")
    task = spec.get("task")
    if not isinstance(task, dict):
        raise _tf_config_error('Expected a "task" object with "type" and "index"', f"task={task!r}")
    task_type, index = task.get("type"), task.get("index", 0)
    if task_type not in cluster:
        raise _tf_config_error(
            f"Expected task.type to be one of the cluster's {sorted(cluster)}",
            f"task.type={task_type!r}",
        )
    if not isinstance(index, int) or isinstance(index, bool):
        raise _tf_config_error("Expected an integer task.index", f"task.index={index!r}")
    if not 0 <= index < len(cluster[task_type]):
        raise _tf_config_error(
            f"Expected task.index in [0, {len(cluster[task_type])}) for the "
            f"{len(cluster[task_type])} {task_type} addresses",
            f"task.index={index!r}",
        )
    is_chief = task_type == "chief" or ("chief" not in cluster and index == 0)
    return WorkerTask(task_type, index, num_workers, is_chief)


def make_strategy(name: str, devices: Sequence[str] | None = None) -> tf.distribute.Strategy:
    """Returns the ``tf.distribute`` strategy called ``name`` (see the module docstring).

    For "multi_worker" it is made once per process and returned again after.

    Args:
        name: "none", "mirrored" or "multi_worker".
        devices: for "mirrored", the devices to mirror over (default: all GPUs,
            or the CPU when there is none).

    Raises:
        ConfigError: for an unknown name, devices with another strategy than
            "mirrored", a bad ``TF_CONFIG``, or a "multi_worker" strategy asked
            for after TensorFlow has started.
    """
    if name not in DISTRIBUTIONS:
        raise ConfigError(
            f"Expected one of {list(DISTRIBUTIONS)} for `train.distribution`. "
            f"Received: train.distribution={name!r}"
        )
    if devices and name == "none":
        raise ConfigError(f"Devices {list(devices)} given without a distribution.")
    if devices and name != "mirrored":
        raise ConfigError(
            f"Devices {list(devices)} are for train.distribution='mirrored'. "
            f"Received: train.distribution={name!r}"
        )
    if name == "none":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy(devices=list(devices) if devices else None)
    return _make_multi_worker_strategy()


def _make_multi_worker_strategy() -> tf.distribute.MultiWorkerMirroredStrategy:
    """The process' ``MultiWorkerMirroredStrategy`` (made on the first call)."""
    global _multi_worker_strategy
    if _multi_worker_strategy is None:
        read_tf_config()
        try:
            _multi_worker_strategy = tf.distribute.MultiWorkerMirroredStrategy()
        except RuntimeError as error:  # "Collective ops must be configured at program startup"
            raise ConfigError(
                "train.distribution='multi_worker' must set up TensorFlow's collectives "
                "before any TensorFlow op runs in the process, but TensorFlow has already "
                "started. Call seq2seq.distribute.make_strategy('multi_worker') (or "
                f"seq2seq.training.train) first. ({error})"
            ) from None
    return _multi_worker_strategy


def is_multi_worker(strategy: tf.distribute.Strategy) -> bool:
    """Whether ``strategy`` spans several processes."""
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes the model directory (always, outside multi-worker)."""
    return bool(strategy.extended.should_checkpoint)


@contextlib.contextmanager
def worker_dir(strategy: tf.distribute.Strategy, model_dir: str) -> Iterator[str]:
    """Yields the directory this process writes its model files to.

    The chief (and every single-process run) writes ``model_dir``. The other
    workers of a multi-worker run execute the same saving code, which may
    take part in collectives, into a private temporary directory removed
    afterwards, so ``model_dir`` holds the chief's files only.
    """
    if is_chief(strategy):
        yield model_dir
        return
    task_id = strategy.cluster_resolver.task_id
    path = tempfile.mkdtemp(prefix=f"seq2seq-worker{task_id}-")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def barrier(strategy: tf.distribute.Strategy) -> None:
    """Waits until every worker of a multi-worker run gets here (no-op otherwise)."""
    if is_multi_worker(strategy):

        @tf.function
        def all_reduce_one():
            ones = strategy.run(lambda: tf.constant(1.0))
            return strategy.reduce(tf.distribute.ReduceOp.SUM, ones, axis=None)

        all_reduce_one()


def replica_rows(tensor: tf.Tensor, num_replicas: int, first: int, count: int) -> tf.Tensor:
    """Splits a batch [batch, time] into ``count`` replicas' parts [count, rows, time].

    The batch is padded with PAD_ID rows to a multiple of ``num_replicas``
    and cut into ``num_replicas`` equal parts of consecutive rows; the parts
    ``first .. first + count - 1`` are returned. All replicas get the same
    shape (collectives need it); PAD rows count in no loss or metric.
    """
    rows, time = tf.shape(tensor)[0], tf.shape(tensor)[1]
    per_replica = (rows + num_replicas - 1) // num_replicas
    padded = tf.pad(
        tensor, [[0, per_replica * num_replicas - rows], [0, 0]], constant_values=PAD_ID
    )
    return tf.reshape(padded, [num_replicas, per_replica, time])[first : first + count]


def distribute_batches(
    strategy: tf.distribute.Strategy, make_dataset: Callable[[], tf.data.Dataset]
) -> tf.data.Dataset | tf.distribute.DistributedDataset:
    """The batches of ``make_dataset()`` as ``fit`` should get them under ``strategy``.

    Outside multi-worker training, the dataset itself (Keras splits each
    batch between the local replicas). Under "multi_worker", every worker
    builds the same global batches (the data order depends only on the
    seed and the epoch) and keeps its own replicas' rows (``replica_rows``):
    the workers see disjoint parts of every global batch, each global batch
    is one step, and ``train.batch_size`` stays the global batch.

    Args:
        strategy: the strategy ``fit`` runs under.
        make_dataset: builds the dataset of global batches ``(inputs, target)``
            with ``inputs`` a dict of [batch, time] arrays and target [batch, time].
    """
    if not is_multi_worker(strategy):
        return make_dataset()
    num_replicas = strategy.num_replicas_in_sync

    def dataset_fn(context: tf.distribute.InputContext) -> tf.data.Dataset:
        count = num_replicas // context.num_input_pipelines
        first = context.input_pipeline_id * count

        def split(inputs, target):
            parts = {key: replica_rows(x, num_replicas, first, count) for key, x in inputs.items()}
            return parts, replica_rows(target, num_replicas, first, count)

        dataset = make_dataset().map(split).unbatch()
        return dataset.prefetch(tf.data.AUTOTUNE)

    return strategy.distribute_datasets_from_function(dataset_fn)


def _step_function(
    strategy: tf.distribute.Strategy, step: Callable
) -> Callable[[tf.distribute.DistributedIterator], dict]:
    """A Keras ``train_function``/``test_function``: one ``step`` on every replica.

    Returns each metric's mean over the replicas of all workers (the same
    value on every worker), as Keras does for "mirrored".
    """

    @tf.function(reduce_retracing=True)
    def function(iterator):
        outputs = strategy.run(step, args=(iterator.get_next(),))
        return {
            name: strategy.reduce(tf.distribute.ReduceOp.MEAN, value, axis=None)
            for name, value in outputs.items()
        }

    return function


@contextlib.contextmanager
def fit_scope(
    model: keras.Model,
    strategy: tf.distribute.Strategy,
    make_dataset: Callable[[], tf.data.Dataset],
) -> Iterator[None]:
    """The context ``model.fit`` runs in under ``strategy``.

    Nothing to do outside multi-worker training. Under "multi_worker" it works
    around two places where Keras 3 ``fit`` fails with
    MultiWorkerMirroredStrategy (keras-team/keras#20585,
    tensorflow/tensorflow#72388), both ``strategy.reduce`` calls that only
    single-machine strategies accept:

    - before the first step ``fit`` averages the first distributed batch, a
      nested ``({"source", "decoder_input"}, target)``, to learn the shapes
      it builds the metrics from. Here the model, loss and metrics are built
      from the element spec of ``make_dataset()``, and ``fit`` runs in the
      strategy's scope with the model's own record of the strategy cleared,
      which makes Keras skip that step;
    - after every step Keras averages the scalar metric values over an axis
      they lack. Here the model gets its own train and test functions
      (``_step_function``), which average them over the replicas.

    Args:
        model: the compiled model, made in ``strategy``'s scope.
        strategy: the strategy of the run.
        make_dataset: builds the dataset of global batches (not iterated).
    """
    if not is_multi_worker(strategy):
        yield
        return
    with strategy.scope():
        model._symbolic_build(data_batch=make_dataset().element_spec)
        model._distribute_strategy = None  # Keras then takes the strategy of the scope
        model.train_function = _step_function(strategy, model.train_step)
        model.test_function = _step_function(strategy, model.test_step)
        try:
            yield
        finally:
            model._distribute_strategy = strategy
            model.train_function = model.test_function = None
