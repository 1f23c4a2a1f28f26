"""Starts local training processes on 127.0.0.1: a `TF_CONFIG` cluster in one machine."""

import json
import os
import socket
import subprocess
import sys
import time

from tests.harness import subprocess_env

WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_worker.py")
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def free_ports(n):
    """`n` distinct free TCP ports on 127.0.0.1 (all held open while choosing)."""
    sockets = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def tf_config(ports, index):
    """The `TF_CONFIG` of worker `index` in a cluster of local workers on `ports`."""
    return json.dumps({"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
                       "task": {"type": "worker", "index": index}})


def run_processes(specs, log_dir, timeout, script=WORKER):
    """Runs `script SPEC` for every spec at once (see `run_commands`)."""
    return run_commands([([sys.executable, script, json.dumps(spec)], {}) for spec in specs],
                        log_dir, timeout)


def run_commands(commands, log_dir, timeout):
    """Runs every `(argv, extra_env)` at once; returns their return codes and log tails.

    When one process fails (a non-zero code, e.g. -9 for a killed worker), the
    others are killed too: a synchronous cluster cannot go on without it, and
    the job is restarted as a whole. Every process is killed after `timeout`
    seconds (then `TimeoutError`), and on any error, so no process outlives
    the call.
    """
    env = subprocess_env()
    env.pop("TF_CONFIG", None)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (REPO, env.get("PYTHONPATH")) if p)
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    os.makedirs(log_dir, exist_ok=True)
    procs, logs = [], []
    try:
        for i, (argv, extra_env) in enumerate(commands):
            log = open(os.path.join(log_dir, f"log-{i}-{time.time_ns()}.txt"), "w")
            logs.append(log)
            procs.append(subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                          env=dict(env, **extra_env)))
        deadline = time.monotonic() + timeout
        while True:
            codes = [p.poll() for p in procs]
            if all(c is not None for c in codes) or any(c not in (None, 0) for c in codes):
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"training processes still running after {timeout} s: "
                                   + tail(logs))
            time.sleep(0.2)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait()
        for log in logs:
            log.close()
    return [p.returncode for p in procs], tail(logs)


def tail(logs, n=3000):
    out = []
    for log in logs:
        try:
            with open(log.name) as f:
                out.append(f"--- {os.path.basename(log.name)}\n" + f.read()[-n:])
        except OSError:
            pass
    return "\n".join(out)


def run_cluster(root, workers=2, epochs=4, kill_at=None, timeout=600):
    """Trains on `workers` local workers; `kill_at=(epoch, batch, worker)` kills one."""
    ports = free_ports(workers)
    specs = [dict(root=str(root), index=i, ports=ports, epochs=epochs, kill_at=kill_at)
             for i in range(workers)]
    return run_processes(specs, os.path.join(root, "logs"), timeout)


def run_single(root, epochs=4, timeout=600):
    spec = dict(root=str(root), index=None, ports=[], epochs=epochs)
    return run_processes([spec], os.path.join(root, "logs"), timeout)
