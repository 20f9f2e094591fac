"""Compare two ``results.json`` files of ``rapidnn reproduce`` number by number, ignoring what
differs run to run (wall times, the machine, file paths under the model stores).

Used to check that a refactoring changes no result: run ``rapidnn reproduce --quick`` at two
commits (each with its own empty ``RAPIDNN_STORE``) and compare.

Run: ``.venv/bin/python benchmarks/diff_results.py OLD/results.json NEW/results.json``
(exit status 1 when a number differs; keys only one side has are listed, not failures).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

IGNORED = {"seconds", "sweep_seconds", "seconds_this_run", "machine", "train_seconds"}


def _strip(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _strip(v) for k, v in obj.items()
                if k not in IGNORED and not k.endswith("_seconds")}
    if isinstance(obj, list):
        return [_strip(v) for v in obj]
    if isinstance(obj, str) and ("/" in obj and obj.endswith((".rapidnn", ".safetensors"))):
        return obj.rsplit("/", 1)[-1]  # the store entry's name, not its folder
    return obj


def differences(old: Any, new: Any, path: str = "") -> tuple[list[str], list[str]]:
    """(changed values, keys only one side has) between two stripped documents."""
    changed: list[str] = []
    extra: list[str] = []
    if isinstance(old, dict) and isinstance(new, dict):
        for k in sorted(set(old) | set(new)):
            if k not in old or k not in new:
                extra.append(f"{path}.{k}: only in {'new' if k not in old else 'old'}")
            else:
                c, e = differences(old[k], new[k], f"{path}.{k}")
                changed += c
                extra += e
    elif isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        for i, (a, b) in enumerate(zip(old, new, strict=True)):
            c, e = differences(a, b, f"{path}[{i}]")
            changed += c
            extra += e
    elif old != new:
        changed.append(f"{path}: {str(old)[:80]} != {str(new)[:80]}")
    return changed, extra


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old")
    parser.add_argument("new")
    args = parser.parse_args()
    with open(args.old) as f_old, open(args.new) as f_new:
        changed, extra = differences(_strip(json.load(f_old)), _strip(json.load(f_new)))
    for line in extra + changed:
        print(line)
    print(f"{len(changed)} changed value(s), {len(extra)} key(s) on one side only")
    return 1 if changed else 0


if __name__ == "__main__":
    sys.exit(main())
