"""Snakemake's own CPU time under its two schedulers, ``ilp`` (the default when PuLP is
installed, as it is with this project's ``workflow`` extra) and ``greedy``, on a synthetic
workflow shaped like the default run's (N jobs of a first rule, each feeding one job of a
second: downloads then spectra), with Snakemake's ``benchmark:`` directive on the first.

Snakemake's own process (scheduling, file checks, benchmark timers) is read from
``/proc/PID/stat`` every half second while it runs (Linux); the jobs are ``sleep`` calls, so
what is measured is Snakemake alone. The full-scale rehearsal (``rehearse_default.py``) reports
the same quantity for the real run.

Usage::

    python benchmarks/bench_scheduler.py [--jobs 300] [--sleep 0.2] [--cores 2]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SNAKEFILE = """
rule all:
    input: expand("b/{{i}}.txt", i=range({n}))
rule first:
    output: "a/{{i}}.txt"
    benchmark: "bench/{{i}}.tsv"
    shell: "sleep {sleep}; echo {{wildcards.i}} > {{output}}"
rule second:
    input: "a/{{i}}.txt"
    output: "b/{{i}}.txt"
    shell: "sleep {sleep}; cat {{input}} > {{output}}"
"""


def own_cpu_s(pid: int) -> float | None:
    """CPU seconds (user + system) of process ``pid`` itself, from ``/proc/PID/stat``."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(workdir: Path, scheduler: str, cores: int) -> tuple[float, float]:
    """Wall seconds and Snakemake's own CPU seconds of one run in ``workdir``."""
    cmd = [sys.executable, "-m", "snakemake", "--cores", str(cores), "--scheduler", scheduler,
           "--quiet", "all"]  # fmt: skip
    start, own = time.perf_counter(), 0.0
    proc = subprocess.Popen(cmd, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    while proc.poll() is None:
        own = own_cpu_s(proc.pid) or own
        time.sleep(0.5)
    if proc.returncode != 0:
        raise SystemExit(f"snakemake --scheduler {scheduler} failed: {proc.stderr.read()[-2000:]}")
    return time.perf_counter() - start, own


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=300, help="jobs per rule (2x in all)")
    parser.add_argument("--sleep", type=float, default=0.2, help="seconds each job sleeps")
    parser.add_argument("--cores", type=int, default=2)
    args = parser.parse_args()
    print(f"{2 * args.jobs} jobs of {args.sleep} s, --cores {args.cores}")
    print("| scheduler | wall s | Snakemake's own CPU s | CPU ms per job |")
    print("|---|---|---|---|")
    own = {}
    for scheduler in ("ilp", "greedy"):
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            (work / "Snakefile").write_text(SNAKEFILE.format(n=args.jobs, sleep=args.sleep))
            wall, own[scheduler] = run(work, scheduler, args.cores)
        per_job = 1000 * own[scheduler] / (2 * args.jobs)
        print(f"| {scheduler} | {wall:.0f} | {own[scheduler]:.1f} | {per_job:.0f} |", flush=True)
    print(f"ilp / greedy (Snakemake's own CPU): {own['ilp'] / own['greedy']:.2f}")


if __name__ == "__main__":
    main()
