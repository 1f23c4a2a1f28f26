"""Scores the diagnoses of the labelled corpus (`corpus.py --out FILE`).

Per code: recall (planted and found / planted), false alarms (found on a run
where it was not planted); healthy runs with no finding; pathological runs
with no code other than the planted ones. Prints a markdown section.

    python benchmarks/diagnostics/score.py benchmarks/diagnostics/corpus_results.json
"""

import argparse
import json
import sys


def score(runs):
    codes = sorted({c for r in runs for c in r["planted"] + r["found"]})
    table = []
    for code in codes:
        planted = [r for r in runs if code in r["planted"]]
        hit = [r for r in planted if code in r["found"]]
        false = [r for r in runs if code in r["found"] and code not in r["planted"]]
        table.append({
            "code": code, "planted": len(planted), "found": len(hit),
            "recall": len(hit) / len(planted) if planted else None,
            "false_alarms": len(false), "false_alarm_runs": [r["run"] for r in false],
        })
    healthy = [r for r in runs if not r["planted"]]
    sick = [r for r in runs if r["planted"]]
    return {
        "codes": table,
        "healthy_runs": len(healthy),
        "healthy_clean": sum(1 for r in healthy if not r["found"]),
        "pathological_runs": len(sick),
        "pathological_only_planted": sum(
            1 for r in sick if set(r["found"]) <= set(r["planted"])
        ),
        "exact": sum(1 for r in runs if set(r["found"]) == set(r["planted"])),
        "runs": len(runs),
    }


def markdown(result, runs, seconds=None):
    lines = [
        "| code | planted in | found | recall | false alarms |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for row in result["codes"]:
        recall = "—" if row["recall"] is None else f"{row['recall']:.2f}"
        lines.append(
            f"| `{row['code']}` | {row['planted']} | {row['found']} | {recall} | "
            f"{row['false_alarms']} |"
        )
    lines += [
        "",
        f"- healthy runs with no finding: {result['healthy_clean']} / {result['healthy_runs']}",
        f"- pathological runs with no code beyond the planted ones: "
        f"{result['pathological_only_planted']} / {result['pathological_runs']}",
        f"- runs diagnosed exactly (found = planted): {result['exact']} / {result['runs']}",
    ]
    if seconds is not None:
        lines.append(f"- corpus wall time: {seconds:.0f} s")
    misses = [r for r in runs if set(r["found"]) != set(r["planted"])]
    if misses:
        lines += ["", "Runs not diagnosed exactly:", ""]
        lines += [
            f"- `{r['run']}`: planted {r['planted']}, found {r['found']}" for r in misses
        ]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", help="JSON written by corpus.py --out")
    args = parser.parse_args(argv)
    with open(args.results) as handle:
        data = json.load(handle)
    result = score(data["runs"])
    print(markdown(result, data["runs"], data.get("seconds")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
