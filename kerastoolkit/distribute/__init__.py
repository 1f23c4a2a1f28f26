"""`tf.distribute` helpers: strategy selection, scaling rules, multi-worker support.

- `strategy()` picks a TPU, multi-worker, multi-GPU or default strategy.
- `enable_multi_worker()` makes `model.fit` work under
  `MultiWorkerMirroredStrategy` (keras-team/keras#20585); `strategy()` calls it.
- `is_chief()`, `chief_path()`, `worker_backup_dir()`: only the chief writes
  the run's files; every worker keeps its own backup.
- `scale_learning_rate()`: the linear scaling rule (Goyal et al., 2018).

TensorFlow is imported only when a strategy is created.
"""

from kerastoolkit.distribute.cluster import chief_path
from kerastoolkit.distribute.cluster import cluster_spec
from kerastoolkit.distribute.cluster import is_chief
from kerastoolkit.distribute.cluster import num_workers
from kerastoolkit.distribute.cluster import remove_worker_files
from kerastoolkit.distribute.cluster import task
from kerastoolkit.distribute.cluster import worker_backup_dir
from kerastoolkit.distribute.strategies import KINDS
from kerastoolkit.distribute.strategies import disable_multi_worker
from kerastoolkit.distribute.strategies import enable_multi_worker
from kerastoolkit.distribute.strategies import strategy
from kerastoolkit.distribute.strategies import strategy_name

try:  # written for issue 10; this package works without it
    from kerastoolkit.distribute.scaling import scale_learning_rate  # noqa: F401
except ModuleNotFoundError as e:
    if e.name != "kerastoolkit.distribute.scaling":
        raise
