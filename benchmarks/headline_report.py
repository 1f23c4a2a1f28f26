"""The issue-23 tables of BENCHMARKS.md, from the JSON results of the headline benchmarks.

    python benchmarks/headline_report.py [--results benchmarks/results] [--label _b23]

`--label L` keeps only the runs whose names end with `L` (the `--label` the
benchmark was run with) and reports them under their names without it.
"""

import argparse
import json
import os

import numpy as np


def load(folder, name, label=""):
    path = os.path.join(folder, name)
    if not os.path.exists(path):
        return []
    with open(path) as f:
        records = json.load(f)
    if not label:
        return records
    return [dict(r, run=r["run"][: -len(label)]) for r in records if r["run"].endswith(label)]


def mean_std(values):
    values = [v for v in values if v is not None]
    if not values:
        return "—"
    if len(values) == 1:
        return f"{100 * values[0]:.2f}%"
    return f"{100 * np.mean(values):.2f}% ± {100 * np.std(values):.2f} ({', '.join(f'{100 * v:.2f}' for v in values)})"


def accuracy_tables(records):
    rows = [r for r in records if r["run"] in ("full", "no_augmentation", "no_label_smoothing", "untuned_schedule",
                                               "plain")]
    if not rows:
        return
    print("| run | seeds | test accuracy, last epoch (no SWA) | with SWA (last 30%) | SWA + TTA (recipe's views) |"
          " no SWA + TTA |")
    print("| --- | --- | --- | --- | --- | --- |")
    for run in ("full", "no_augmentation", "no_label_smoothing", "untuned_schedule", "plain"):
        got = sorted((r for r in rows if r["run"] == run), key=lambda r: r["seed"])
        if not got:
            continue
        last = [r["history"][-1][2] if not r.get("averaged_from_epoch") else r["averaged_from_epoch"][str(r["epochs"])]["plain"]
                for r in got]
        swa = [r["final"] for r in got]
        swa_tta = [r["tta"].get("recipe") for r in got]
        last_tta = [(r.get("averaged_from_epoch") or {}).get(str(r["epochs"]), {}).get("tta") for r in got]
        print(f"| {run} | {', '.join(str(r['seed']) for r in got)} | {mean_std(last)} | {mean_std(swa)} | "
              f"{mean_std(swa_tta)} | {mean_std(last_tta)} |")
    print()
    print("TTA view sets (the SWA model of each run):")
    print("| run | seed | none | identity+hflip | identity+hflip+shift:1 |")
    print("| --- | --- | --- | --- | --- |")
    for r in sorted(rows, key=lambda r: (r["run"], r["seed"])):
        t = r["tta"]
        print(f"| {r['run']} | {r['seed']} | {100 * t['none']:.2f} | {100 * t['flip']:.2f} | {100 * t['flip+shift1']:.2f} |")
    print()
    print("Weights averaged from epoch k to 10 (post hoc), test accuracy plain / TTA:")
    for r in sorted(rows, key=lambda r: (r["run"], r["seed"])):
        table = r.get("averaged_from_epoch") or {}
        cells = ", ".join(f"{k}: {100 * v['plain']:.2f}" + (f" / {100 * v['tta']:.2f}" if "tta" in v else "")
                          for k, v in sorted(table.items(), key=lambda kv: int(kv[0])))
        print(f"- {r['run']} seed {r['seed']}: {cells}")
    print()


def distillation_table(records):
    teacher = next((r for r in records if r["run"] == "teacher"), None)
    if teacher is None:
        return
    print(f"teacher: {100 * teacher['test_accuracy']:.2f}%, {teacher['parameters']:,} parameters; "
          f"student {teacher['student_parameters']:,} parameters "
          f"(1/{teacher['parameters'] / teacher['student_parameters']:.1f})")
    alone = {r["seed"]: r["final"] for r in records if r["run"] == "alone"}
    a = np.mean(list(alone.values())) if alone else None
    print("| student | seeds | test accuracy | gap recovered |")
    print("| --- | --- | --- | --- |")
    names = sorted({r["run"] for r in records if r["run"] not in ("teacher",) and not r["run"].startswith("sweep")})
    for name in names:
        got = sorted((r for r in records if r["run"] == name), key=lambda r: r["seed"])
        finals = [r["final"] for r in got]
        gap = "" if name == "alone" or a is None else \
            f"{(np.mean(finals) - a) / (teacher['test_accuracy'] - a):.2f}"
        print(f"| {name} | {', '.join(str(r['seed']) for r in got)} | {mean_std(finals)} | {gap} |")
    sweep = [r for r in records if r["run"].startswith("sweep_stored")]
    if sweep:
        base = next((r["final"] for r in records if r["run"].startswith("sweep_alone")), None)
        print()
        print("| T \\ alpha | " + " | ".join(f"{a:g}" for a in sorted({r['alpha'] for r in sweep})) + " |")
        print("| --- |" + " --- |" * len({r["alpha"] for r in sweep}))
        for t in sorted({r["temperature"] for r in sweep}):
            cells = []
            for alpha in sorted({r["alpha"] for r in sweep}):
                r = next((r for r in sweep if r["temperature"] == t and r["alpha"] == alpha), None)
                cells.append(f"{100 * r['final']:.2f}" if r else "—")
            print(f"| {t:g} | " + " | ".join(cells) + " |")
        if base is not None:
            print(f"(student alone, same epochs: {100 * base:.2f})")
    print()


def speed_tables(records):
    for r in records:
        if r["run"].startswith("race"):
            print(f"{r['run']} seed {r['seed']}, load {r['machine_before']['load_average']} -> "
                  f"{r['machine_after']['load_average']}")
            print("| run | batch | s/epoch | test accuracy by epoch | 90% after | ratio |")
            print("| --- | --- | --- | --- | --- | --- |")
            for run in r["runs"]:
                accs = " / ".join(f"{h[2]:.3f}" for h in run["history"])
                print(f"| {run['name']} | {run['batch_size']} | {run['seconds_per_epoch']} | {accs} | "
                      f"{run['seconds_to_90']} | {run['ratio']} |")
            print()
        elif r["run"].startswith("throughput"):
            print(f"{r['run']}: load {r['machine']['load_average']}, bf16 units: {r['has_bf16_units']}")
            print("| dtype | batch | XLA | pipeline | s/epoch | vs float32 batch 128 |")
            print("| --- | --- | --- | --- | --- | --- |")
            for row in r["rows"]:
                print(f"| {row['dtype']} | {row['batch_size']} | {row['jit_compile']} | {row['pipeline']} | "
                      f"{row['seconds_per_epoch']} | {row['vs_float32_128']} |")
            print()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default="benchmarks/results")
    parser.add_argument("--label", default="", help="report only the runs named with this suffix")
    args = parser.parse_args()
    accuracy_tables(load(args.results, "headline_accuracy.json", args.label))
    distillation_table(load(args.results, "headline_distillation.json", args.label))
    speed_tables(load(args.results, "headline_speed.json", args.label))
    for r in load(args.results, "headline_ensembles.json", args.label):
        print(f"{r['run']} ({r['epochs']} epochs in all): members {[round(100 * m, 2) for m in r['members']]}, "
              f"ensemble {100 * r['ensemble']:.2f}%, with TTA {100 * r['ensemble_tta']:.2f}%; members with TTA "
              f"{[round(100 * m, 2) for m in r['members_tta']]}")


if __name__ == "__main__":
    main()
