"""What preflight costs against the `kerastoolkit train` run it checks.

Runs `kerastoolkit train` in this process (`kerastoolkit.cli.main`), with
preflight on (the default), and times the `kt.preflight.check` call inside
it: the ratio is the check's seconds over the rest of the run (data, model,
`fit`, test, export), both measured in the same run of the same process, so
that the load of a shared machine weighs on both alike; the same ratio of
the process's CPU seconds (all threads), which the load inflates far less. Each dataset runs
`--repeats` times; the first run of a process pays for imports and is
reported apart. A last run with `--no-preflight` checks that the test
accuracy does not depend on preflight (it leaves the random state alone).

    python benchmarks/preflight_cost.py --datasets digits fashion_mnist --repeats 3 [--no-control] [--out FILE]
"""

import argparse
import contextlib
import io
import json
import os
import platform
import re
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def _cpu():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _load():
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def one_run(dataset, preflight, timings):
    """Runs the command once; returns `(seconds, test accuracy, output)`;
    appends `("run_cpu", CPU seconds of the process)` to `timings`."""
    from kerastoolkit.cli import main

    out = tempfile.mkdtemp(prefix="preflight_cost_")
    argv = ["train", "--dataset", dataset, "--out", out, "--verbose", "0"]
    argv.append("--preflight" if preflight else "--no-preflight")
    buffer = io.StringIO()
    start, cpu = time.perf_counter(), time.process_time()
    with contextlib.redirect_stdout(buffer):
        code = main(argv)
    seconds = time.perf_counter() - start
    timings.append(("run_cpu", time.process_time() - cpu))
    text = buffer.getvalue()
    if code != 0:
        raise SystemExit(f"train {dataset} failed ({code}):\n{text}")
    accuracy = float(re.search(r"test accuracy: ([0-9.]+)", text).group(1))
    return seconds, accuracy, text


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["digits"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=None)
    parser.add_argument("--no-control", action="store_true",
                        help="skip the last run without preflight (its accuracy check)")
    args = parser.parse_args(argv)
    import kerastoolkit as kt
    from kerastoolkit.preflight import checks

    timings = []
    original = checks.check

    def timed(*a, **k):
        start, cpu = time.perf_counter(), time.process_time()
        report = original(*a, **k)
        timings.append((time.perf_counter() - start, report, time.process_time() - cpu))
        return report

    kt.preflight.check = timed
    rows = []
    for dataset in args.datasets:
        for repeat in range(args.repeats):
            timings.clear()
            load = _load()
            total, accuracy, _ = one_run(dataset, True, timings)
            check_s, report, check_cpu = timings[0]
            rest = total - check_s
            rest_cpu = timings[-1][1] - check_cpu
            rows.append({"dataset": dataset, "repeat": repeat, "preflight": True,
                         "check_s": round(check_s, 2), "rest_s": round(rest, 2),
                         "ratio": round(check_s / rest, 4), "check_cpu_s": round(check_cpu, 2),
                         "rest_cpu_s": round(rest_cpu, 2), "cpu_ratio": round(check_cpu / rest_cpu, 4),
                         "accuracy": accuracy,
                         "codes": report.codes, "timings": report.timings,
                         "load_before": load})
            print(json.dumps(rows[-1]), flush=True)
        if args.no_control:
            continue
        total, accuracy, _ = one_run(dataset, False, timings)
        rows.append({"dataset": dataset, "preflight": False, "rest_s": round(total, 2),
                     "rest_cpu_s": round(timings[-1][1], 2),
                     "accuracy": accuracy, "load_before": _load()})
        print(json.dumps(rows[-1]), flush=True)
    result = {"cpu": _cpu(), "cores": os.cpu_count(), "rows": rows}
    if args.out:
        with open(args.out, "w") as handle:
            json.dump(result, handle, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
