"""Where this process sits in a `TF_CONFIG` cluster, and chief-only files.

Keras 3's callbacks have no notion of a chief (tf-keras had one): under
`MultiWorkerMirroredStrategy` every worker runs every callback, so every
worker would write the same checkpoints, snapshots, diagnostics and exports.
The toolkit's callbacks pass their output paths through `chief_path`: the
chief writes where it was asked, the other workers write to a private
temporary folder that is removed when the process exits.

Pure Python (reads the `TF_CONFIG` environment variable), so callbacks can use
it on every backend without importing TensorFlow.
"""

import atexit
import glob
import hashlib
import json
import os
import shutil
import tempfile


def _tf_config():
    raw = os.environ.get("TF_CONFIG", "")
    if not raw.strip():
        return {}
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as e:
        raise ValueError(
            f"The TF_CONFIG environment variable is not valid JSON ({e}). "
            f"Received: TF_CONFIG={raw!r}"
        ) from None
    if not isinstance(config, dict):
        raise ValueError(f"TF_CONFIG must be a JSON object. Received: TF_CONFIG={raw!r}")
    return config


def cluster_spec():
    """The `cluster` of `TF_CONFIG` (`{"worker": [...], ...}`), `{}` without one."""
    return dict(_tf_config().get("cluster") or {})


def task():
    """`(task_type, task_index)` of this process from `TF_CONFIG`; `(None, None)` alone."""
    info = _tf_config().get("task") or {}
    task_type = info.get("type")
    return (task_type, int(info.get("index", 0)) if task_type is not None else None)


def num_workers():
    """The number of training processes (`chief` plus `worker` tasks); 1 without a cluster."""
    spec = cluster_spec()
    return max(1, len(spec.get("chief", [])) + len(spec.get("worker", [])))


def is_chief():
    """Whether this process writes the run's files.

    The chief is the `chief` task, or `worker` 0 when the cluster has no
    `chief`; a process outside any cluster is its own chief. `evaluator` and
    `ps` tasks are not chiefs.

    Returns:
        bool.

    Example:

    ```python
    import kerastoolkit as kt
    if kt.distribute.is_chief():
        print("I write the checkpoints")
    ```
    """
    spec = cluster_spec()
    task_type, index = task()
    if not spec or task_type is None:
        return True
    if task_type == "chief":
        return True
    return task_type == "worker" and index == 0 and "chief" not in spec


_WORKER_TEMP = []


def _remove_stale_worker_folders():
    """Removes the temporary folders of worker processes that no longer run
    (a worker killed with SIGKILL cannot remove its own)."""
    pattern = os.path.join(tempfile.gettempdir(), "kerastoolkit-*-pid*-*")
    for folder in glob.glob(pattern):
        try:
            pid = int(os.path.basename(folder).split("-pid")[1].split("-")[0])
        except (IndexError, ValueError):
            continue
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(folder, ignore_errors=True)
        except OSError:  # exists, owned by someone else
            pass


def _worker_temp_root():
    if not _WORKER_TEMP:
        task_type, index = task()
        _remove_stale_worker_folders()
        root = tempfile.mkdtemp(prefix=f"kerastoolkit-{task_type}{index}-pid{os.getpid()}-")
        _WORKER_TEMP.append(root)
        atexit.register(remove_worker_files)
    return _WORKER_TEMP[0]


def chief_path(path):
    """`path` on the chief; a path in this worker's temporary folder elsewhere.

    Non-chief workers still run the callback (under a synchronous strategy
    every worker must take the same steps), but what they write goes to a
    folder that `remove_worker_files` deletes, which runs when the process
    exits (a worker killed with SIGKILL cannot: the next worker started on
    the machine removes the folders of processes that no longer run). The
    same `path` always maps to the same temporary path.

    Args:
        path: a file or directory path (`str` or `os.PathLike`), or `None`.

    Returns:
        `path` unchanged (as `str`) on the chief or outside a cluster, else a
        path with the same base name under a per-worker temporary folder
        (whose parent exists, so a file can be written there at once).
        `None` for `None`. A path already under this worker's temporary
        folder (one `chief_path` returned, or a file inside it) is returned
        unchanged.
    """
    if path is None:
        return None
    path = os.fspath(path)
    if is_chief():
        return path
    absolute = os.path.abspath(path)
    if _WORKER_TEMP and os.path.commonpath([absolute, _WORKER_TEMP[0]]) == _WORKER_TEMP[0]:
        return path  # already this worker's own: mapped once
    digest = hashlib.sha256(absolute.encode()).hexdigest()[:12]
    parent = os.path.join(_worker_temp_root(), digest)
    os.makedirs(parent, exist_ok=True)  # a file can be opened there at once
    return os.path.join(parent, os.path.basename(absolute.rstrip(os.sep)))


def remove_worker_files():
    """Deletes this worker's temporary folder (a no-op on the chief)."""
    while _WORKER_TEMP:
        shutil.rmtree(_WORKER_TEMP.pop(), ignore_errors=True)


def worker_backup_dir(backup_dir):
    """A `BackupAndRestore` directory of this worker's own.

    Every worker needs its own backup to resume (weights, epoch, and the
    toolkit callbacks' state files): in a cluster this is
    `backup_dir/<task_type>-<index>`, so workers sharing a file system do
    not overwrite each other's files; alone it is `backup_dir`.

    Args:
        backup_dir: the base directory.

    Returns:
        str.
    """
    if backup_dir is None or not str(backup_dir):
        raise TypeError(f"Argument `backup_dir` must be a path. Received: backup_dir={backup_dir!r}")
    backup_dir = os.fspath(backup_dir)
    task_type, index = task()
    if num_workers() <= 1 or task_type is None:
        return backup_dir
    return os.path.join(backup_dir, f"{task_type}-{index}")
