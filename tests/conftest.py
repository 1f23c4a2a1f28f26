"""Shared fixtures. The TensorFlow set-up runs before any test touches a device."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import pytest  # noqa: E402

BACKEND = keras.backend.backend()

if BACKEND == "tensorflow":
    import tensorflow as tf

    # Two logical CPU devices so that MirroredStrategy has two replicas on
    # this machine. This must happen before TensorFlow initialises its
    # devices, so it runs at import time of the test session.
    _cpus = tf.config.list_physical_devices("CPU")
    try:
        tf.config.set_logical_device_configuration(
            _cpus[0],
            [tf.config.LogicalDeviceConfiguration()] * 2,
        )
    except RuntimeError:  # devices already initialised by a plugin
        pass


# xdist's `loadfile` hands the files out in collection order (setup.cfg turns
# off its reordering by test count, which put the one-test files, the longest
# of all, last): these long files first, so that neither worker is left
# running one of them while the other has nothing to do.
LONGEST_FIRST = (
    "tests/test_jax_backend.py",
    "tests/test_readme.py",
    "tests/test_console_script.py",
    "tests/distribute/test_multi_worker.py",
    "tests/test_cli.py",
    "tests/test_import_graph.py",
    "tests/presets/test_presets_health.py",
    "tests/examples/test_examples.py",
    "tests/examples/test_examples_models.py",
)


def pytest_collection_modifyitems(items):
    rank = {path: i for i, path in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))  # stable: the rest keep their order


requires_tensorflow = pytest.mark.skipif(
    BACKEND != "tensorflow", reason="needs the TensorFlow backend"
)


@pytest.fixture
def mirrored_strategy():
    """A `tf.distribute.MirroredStrategy` with 2 replicas on 2 logical CPUs."""
    if BACKEND != "tensorflow":
        raise RuntimeError("mirrored_strategy needs KERAS_BACKEND=tensorflow")
    import tensorflow as tf

    devices = [d.name for d in tf.config.list_logical_devices("CPU")][:2]
    if len(devices) < 2:
        raise RuntimeError(
            f"Expected 2 logical CPU devices for MirroredStrategy, got {devices}"
        )
    # All-reduce through one device: the default collective all-reduce numbers
    # its instances from the same key in every MirroredStrategy, so a second
    # strategy in the same process fails with "Shape mismatch in the
    # collective instance 100" (TF 2.21). The replicas, their variables and
    # the BatchNorm drift between them are the same either way.
    strategy = tf.distribute.MirroredStrategy(
        devices, cross_device_ops=tf.distribute.ReductionToOneDevice()
    )
    assert strategy.num_replicas_in_sync == 2
    return strategy


@pytest.fixture(autouse=True)
def _clear_keras_session():
    """Fresh Keras name scopes and seeds for every test.

    Without the forced `gc.collect()` that `clear_session()` runs by default:
    with TensorFlow's objects on the heap it cost up to a second per test (a
    quarter of the suite's time); Python's own collector still frees cycles.
    """
    keras.backend.clear_session(free_memory=False)
    keras.utils.set_random_seed(0)
    yield
