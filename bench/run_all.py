"""``make bench``: run every benchmark script in ``bench/`` and print one summary.

Each script prints its full tables and marks its headline figures with lines starting ``summary:``;
this runner streams every script's output as it comes and repeats the summary lines at the end,
with the machine they came from. Benchmarks print figures and assert nothing.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
SCRIPTS = ("exact_test.py", "generation.py", "rate_limit.py", "train_throughput.py", "quality.py", "contamination.py")


def run(script: str) -> list[str]:
    """Run one script from the project root, echoing its output; return its summary lines."""
    print(f"\n===== bench/{script}", flush=True)
    summary = []
    start = time.perf_counter()
    with subprocess.Popen([sys.executable, str(BENCH_DIR / script)], cwd=BENCH_DIR.parent, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT) as process:
        assert process.stdout is not None
        for line in process.stdout:
            print(line, end="", flush=True)
            if line.startswith("summary:"):
                summary.append(line.removeprefix("summary:").strip())
    if process.returncode:
        summary.append(f"bench/{script} FAILED with exit code {process.returncode}")
    print(f"----- bench/{script}: {time.perf_counter() - start:.0f} s")
    return summary


def main() -> None:
    lines = [line for script in SCRIPTS for line in run(script)]
    print("\n===== summary")
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPU(s), {platform.processor() or 'unknown CPU'}, "
          f"Python {platform.python_version()}, no GPU used unless a line says so")
    for line in lines:
        print(f"- {line}")


if __name__ == "__main__":
    main()
