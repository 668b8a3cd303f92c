"""``make bench``: every benchmark in turn. ``--quick`` runs the small sizes only."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHES = ["bench_synth.py", "bench_validate.py", "bench_features.py"]


def main() -> int:
    extra = sys.argv[1:]
    failed = []
    for name in BENCHES:
        print(f"\n=== {name} {' '.join(extra)}", flush=True)
        if subprocess.call([sys.executable, str(HERE / name), *extra]) != 0:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
