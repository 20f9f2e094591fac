"""Fuzz the ``.rapidnn`` loader: N seeded mutations of small composed models (half byte-level,
half structural edits re-signed with correct checksums; tests/composer/fuzzing.py).

Acceptable outcomes: ``error`` (one ModelFileError naming the file and the field), ``identical``
(the mutation changed nothing that matters) and, for re-signed edits only, ``consistent`` (a
different but sound model: forward and simulate run and agree). Anything else is a loader bug.

Run: ``.venv/bin/python benchmarks/fuzz_modelfile.py [--cases 10000] [--seed 0]``
(exit status 1 when any case has another outcome).
"""

from __future__ import annotations

import argparse
import faulthandler
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests" / "composer"), str(ROOT / "tests" / "accel")]

from fuzzing import make_samples, run_fuzz  # noqa: E402

ACCEPTED = {"bytes": {"error", "identical"}, "signed": {"error", "identical", "consistent"}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    faulthandler.dump_traceback_later(60, repeat=True)  # a hang shows where it is
    with tempfile.TemporaryDirectory() as tmp:
        samples = make_samples(Path(tmp))
        start = time.perf_counter()
        counts = run_fuzz(samples, args.cases, args.seed, Path(tmp))
        seconds = time.perf_counter() - start
    bad = 0
    print(f"{args.cases} cases (seed {args.seed}) on {len(samples)} models in {seconds:.1f} s")
    for kind, tally in counts.items():
        print(f"  {kind}:")
        for outcome, n in tally.most_common():
            flag = "" if outcome in ACCEPTED[kind] else "   <-- not acceptable"
            bad += 0 if flag == "" else n
            print(f"    {n:6d}  {outcome}{flag}")
    print(f"anything else: {bad}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
