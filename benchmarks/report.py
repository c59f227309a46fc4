"""Print a pytest-benchmark JSON file as a Markdown table of medians and ratios per group.

Usage: python benchmarks/report.py out/bench.json [--baseline NAME_SUBSTRING]
The ratio column is (baseline median) / (row median): >1 means faster than the baseline, where the
baseline is the first row of the group whose name does not contain "crossnet_fast".
"""

from __future__ import annotations

import argparse
import json
import re
from collections import OrderedDict


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("json_file")
    parser.add_argument("--baseline", default=None, help="substring naming the baseline row of each group")
    args = parser.parse_args()
    with open(args.json_file) as fh:
        data = json.load(fh)
    groups: OrderedDict[str, list] = OrderedDict()
    for bench in data["benchmarks"]:
        groups.setdefault(bench.get("group") or bench["name"], []).append(bench)
    machine = data.get("machine_info", {})
    print(
        f"device: {machine.get('cpu', {}).get('brand_raw', machine.get('processor', '?'))}, "
        f"{machine.get('cpu', {}).get('count', '?')} threads"
    )
    print("| group | implementation | median ms | vs baseline |")
    print("|---|---|---|---|")
    for group, rows in groups.items():

        def name(b):
            m = re.search(r"\[(.*)\]", b["name"])
            return m.group(1) if m else b["name"]

        if args.baseline:
            base = next((b for b in rows if args.baseline in name(b)), rows[0])
        else:
            base = next((b for b in rows if "crossnet_fast" not in name(b)), rows[0])
        for b in rows:
            ratio = base["stats"]["median"] / b["stats"]["median"]
            print(f"| {group} | {name(b)} | {b['stats']['median'] * 1e3:.3f} | {ratio:.2f}x vs {name(base)} |")


if __name__ == "__main__":
    main()
