"""Choosing a `tf.distribute` strategy for where the code runs."""

import logging
import os

from kerastoolkit.distribute import cluster

logger = logging.getLogger("kerastoolkit.distribute")

KINDS = ("auto", "tpu", "multi_worker", "mirrored", "none")


def enable_multi_worker():
    """Makes `model.fit` work under `tf.distribute.MultiWorkerMirroredStrategy`.

    Keras 3's TensorFlow trainer fails at the start of `fit` under a
    multi-worker strategy ("Attempt to convert a value (PerReplica...)",
    keras-team/keras#20585). This installs the toolkit's fix (see
    `kerastoolkit/_keras_compat.py`); `strategy()` calls it when it picks
    `MultiWorkerMirroredStrategy`, so call it yourself only when you create
    the strategy yourself. Idempotent; single-worker training is unchanged.

    Raises:
        RuntimeError: on a Keras version the fix was not verified on.

    Example:

    ```python
    import kerastoolkit as kt
    kt.distribute.enable_multi_worker()
    ```
    """
    from kerastoolkit import _keras_compat

    _keras_compat.enable_multi_worker_fit()


def disable_multi_worker():
    """Puts back Keras's own functions replaced by `enable_multi_worker`."""
    from kerastoolkit import _keras_compat

    _keras_compat.disable_multi_worker_fit()


def _tpu_present():
    import tensorflow as tf

    if os.environ.get("TPU_NAME") or os.environ.get("COLAB_TPU_ADDR"):
        return True
    return bool(tf.config.list_physical_devices("TPU"))


def _gpu_count():
    import tensorflow as tf

    return len(tf.config.list_physical_devices("GPU"))


def _tpu_strategy():
    import tensorflow as tf

    tpu = os.environ.get("TPU_NAME")
    if not tpu and os.environ.get("COLAB_TPU_ADDR"):
        tpu = "grpc://" + os.environ["COLAB_TPU_ADDR"]
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu or "local")
    if tpu and tpu != "local":
        tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)


def _choose(kind):
    if kind != "auto":
        return kind
    if _tpu_present():
        return "tpu"
    if cluster.num_workers() > 1:
        return "multi_worker"
    if _gpu_count() > 1:
        return "mirrored"
    return "none"


def strategy_name(strategy):
    """The public class name of a `tf.distribute` strategy, for messages."""
    import tensorflow as tf

    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return "MultiWorkerMirroredStrategy"  # its class is CollectiveAllReduceStrategy
    return type(strategy).__name__


def strategy(kind="auto", verbose=1):
    """The `tf.distribute` strategy for where this process runs.

    With `kind="auto"`: a `TPUStrategy` (through a `TPUClusterResolver`) when
    a TPU is present (`TPU_NAME`, `COLAB_TPU_ADDR` or a local TPU device); a
    `MultiWorkerMirroredStrategy` when `TF_CONFIG` names a cluster of more
    than one worker (and the toolkit's fix for keras-team/keras#20585 is
    installed, see `enable_multi_worker`); a `MirroredStrategy` over all GPUs
    when there are several; the default strategy (one device) otherwise.
    It logs its choice and the replica count to the `kerastoolkit.distribute`
    logger and, with `verbose=1`, prints them.

    Build and compile the model inside `strategy.scope()`; give `fit` the
    *global* batch size (split over `strategy.num_replicas_in_sync` replicas)
    and scale the learning rate with `scale_learning_rate`.

    Args:
        kind: `"auto"`, `"tpu"`, `"multi_worker"`, `"mirrored"` or `"none"`
            (the default strategy). Defaults to `"auto"`.
        verbose: 1 prints the choice, 0 only logs it. Defaults to `1`.

    Returns:
        A `tf.distribute.Strategy`.

    Raises:
        ValueError: for an unknown `kind`.
        RuntimeError: for `kind="multi_worker"` without a `TF_CONFIG` cluster.

    Example:

    ```python
    import kerastoolkit as kt
    strategy = kt.distribute.strategy()  # the default strategy on one CPU
    print(strategy.num_replicas_in_sync)
    ```
    """
    if kind not in KINDS:
        raise ValueError(
            f"Argument `kind` must be one of {', '.join(map(repr, KINDS))}. Received: kind={kind!r}"
        )
    if verbose not in (0, 1):
        raise ValueError(f"Argument `verbose` must be 0 or 1. Received: verbose={verbose!r}")
    import tensorflow as tf

    chosen = _choose(kind)
    if chosen == "tpu":
        result = _tpu_strategy()
    elif chosen == "multi_worker":
        if not cluster.cluster_spec():
            raise RuntimeError(
                "kind='multi_worker' needs a TF_CONFIG environment variable that "
                "names the cluster and this task. Received: TF_CONFIG="
                f"{os.environ.get('TF_CONFIG')!r}"
            )
        enable_multi_worker()
        result = tf.distribute.MultiWorkerMirroredStrategy()
    elif chosen == "mirrored":
        result = tf.distribute.MirroredStrategy()
    else:
        result = tf.distribute.get_strategy()
    name = strategy_name(result)
    task_type, index = cluster.task()
    where = f", task {task_type}:{index} of {cluster.num_workers()}" if task_type else ""
    message = (
        f"kerastoolkit.distribute.strategy: {name} "
        f"(kind={kind!r}), {result.num_replicas_in_sync} replica(s){where}"
    )
    logger.info(message)
    if verbose:
        print(message)
    return result
