"""``make bench``: every benchmark in turn, each printing its figures beside a baseline measured in the same run.

python bench/run.py            synth 100k×6 and 4M×2; validate and features at 100k and 1M; retrain 1M×4; score 4M
python bench/run.py --quick    the small sizes only (retrain 100k×4, score 200k)
python bench/run.py --national also validate and build features for 4M students × 2 terms (~25 min); retrain 4M×4
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    quick = "--quick" in sys.argv[1:]
    national = "--national" in sys.argv[1:]
    runs = [
        ["bench_synth.py", *(["--quick"] if quick else [])],
        ["bench_validate.py", *(["--quick"] if quick else []), *(["--national"] if national else [])],
        ["bench_features.py", *(["--quick"] if quick else []), *(["--national"] if national else [])],
        ["bench_train.py", *(["--quick"] if quick else []), *(["--national"] if national else [])],
        ["bench_score.py", *(["--quick"] if quick else [])],
    ]
    failed = []
    for name, *args in runs:
        print(f"\n=== {name} {' '.join(args)}", flush=True)
        if subprocess.call([sys.executable, str(HERE / name), *args]) != 0:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
