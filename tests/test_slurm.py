"""The pipeline submitted to a real Slurm cluster gives the same results as a local run.

A single-node Slurm (Debian's slurm-wlm, munge) is started on 127.0.0.1 by
``tests/slurm/cluster.sh``. The ``.test`` workflow's weights come from the loopback zoo server
(tests/zoo_server.py). The Slurm run uses the two commands of docs/cluster.md, word for word:

    snakemake --cores 4 --until download_weights
    snakemake --workflow-profile workflow/profiles/slurm

plus test-only additions, each commented where it is added: ``--directory`` (the test's copy of
.test), ``--config`` (the loopback server's URL) and ``--profile tests/slurm/profile`` (settings
this accounting-less cluster needs; see that file). Each snakemake runs under ``timeout -k 30``.

Checked: every job of a non-local rule went through sbatch (its plugin log, its Slurm job id in
slurmctld's log with exit status 0), local rules did not, the compute jobs never touched the
weight server, and results/imagenet/models.tsv, trends.tsv and every spectra parquet (the
ImageNet study) equal those of a local ``snakemake --cores 2`` run (of those targets) on the
same weights. The runs are of the model set osmr_test (three models), whose DAG holds every rule
of the study.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from htsr.studies.table import read_model_table

sys.path.insert(0, str(Path(__file__).parent))
from zoo_server import make_weight_files, serve_zoo, served_table  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CLUSTER = ROOT / "tests" / "slurm" / "cluster.sh"
TEST_PROFILE = ROOT / "tests" / "slurm" / "profile"
TEST_CONFIG = ROOT / ".test" / "config"
#: Wall-clock limit (s) of one snakemake command; `timeout -k 30` kills it and its children.
#: HTSR_TEST_SNAKEMAKE_LIMIT_S raises it on a machine shared with other work.
SNAKEMAKE_LIMIT_S = int(os.environ.get("HTSR_TEST_SNAKEMAKE_LIMIT_S", "480"))
#: Columns that hold wall-clock measurements (none today; they could never match across runs).
#: The tables under results/ compared with the local run (plus the spectra parquet files); the
#: .test configuration's ImageNet study alone (the NLP study runs in tests/test_workflow.py).
COMPARED = ("imagenet/models.tsv", "imagenet/trends.tsv")
TIMING = re.compile(r"(^|_)(time|seconds|elapsed|wall|duration|timestamp)(_|$)|_s$")

pytestmark = [pytest.mark.slurm, pytest.mark.slow]


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    for var in ("HTSR_OFFLINE", "HF_HUB_OFFLINE", "HF_ENDPOINT", "HTSR_TORCHVISION_URL"):
        env.pop(var, None)
    # Test-only: the plugin refuses to submit from inside a Slurm job; never the case here.
    for var in [v for v in env if v.startswith("SLURM_")]:
        env.pop(var)
    env.update(MPLBACKEND="Agg", OMP_NUM_THREADS="1", HF_HUB_DISABLE_TELEMETRY="1", **extra)
    return env


def snakemake(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``snakemake ARGS`` from the repository root under ``timeout -k 30 SNAKEMAKE_LIMIT_S``."""
    cmd = ["timeout", "-k", "30", str(SNAKEMAKE_LIMIT_S), "snakemake", *args]
    return subprocess.run(
        cmd,
        cwd=ROOT,
        env=env or _env(),
        capture_output=True,
        text=True,
        timeout=SNAKEMAKE_LIMIT_S + 60,
    )


def _fail(what: str, run: subprocess.CompletedProcess) -> str:
    return f"{what} exited {run.returncode}:\n{run.stdout[-3000:]}\n{run.stderr[-6000:]}"


@dataclass
class Cluster:
    state_dir: Path

    @property
    def ctld_log(self) -> Path:
        return self.state_dir / "log" / "slurmctld.log"


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A running single-node Slurm; stopped (daemons killed by pid) even when a test fails."""
    if os.geteuid() != 0:
        pytest.skip("tests/slurm/cluster.sh needs root (apt-get, munged, slurmd)")
    if shutil.which("timeout") is None:
        pytest.skip("coreutils' timeout is missing")
    state = tmp_path_factory.mktemp("slurm")
    env = _env(HTSR_SLURM_DIR=str(state))
    start = subprocess.run(
        [str(CLUSTER), "start"], env=env, capture_output=True, text=True, timeout=1200
    )
    try:
        if start.returncode == 3:
            pytest.skip(f"cannot install Slurm here: {start.stderr[-2000:]}")
        assert start.returncode == 0, f"cluster.sh start failed:\n{start.stderr[-6000:]}"
        yield Cluster(state)
    finally:
        stop = subprocess.run(
            [str(CLUSTER), "stop"], env=env, capture_output=True, text=True, timeout=120
        )
        print(stop.stderr, end="")


@dataclass
class Runs:
    local: Path
    slurm: Path
    fetch: subprocess.CompletedProcess
    submit: subprocess.CompletedProcess
    requests_during_submit: list[tuple[str, str, int, str]]
    slurm_wall_s: float


def _workdir(path: Path, rows: pd.DataFrame, files: dict[str, Path]) -> Path:
    shutil.copytree(TEST_CONFIG, path / "config")
    table = path / "config" / "studies" / "imagenet.tsv"
    served_table(rows, files).to_csv(table, sep="\t", index=False)
    return path


@pytest.fixture(scope="session")
def runs(slurm_cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Runs:
    """The .test workflow run locally and on Slurm, on the same served weights."""
    tmp = tmp_path_factory.mktemp("slurm_pipeline")
    rows = read_model_table(TEST_CONFIG / "studies" / "imagenet.tsv")
    files = make_weight_files(rows, tmp / "served")
    local = _workdir(tmp / "local", rows, files)
    remote = _workdir(tmp / "slurm", rows, files)
    with serve_zoo(files) as base:
        # model_set=osmr_test: the ImageNet study's three smallest models (one family), whose
        # DAG has a job of every rule of the full study (spectra, a method's spectra, aggregate,
        # every figure, the paper comparison, provenance): 22 Slurm jobs instead of 36. Each
        # Slurm job costs two Snakemake start-ups (sbatch's job step, then srun's), and the
        # node was measured busy 88 % of the submission: the time is in the jobs, not in the
        # plugin's polling.
        urls = ["--config", f"torchvision_url={base}", f"hf_endpoint={base}",
                f"pytorchcv_url={base}", "studies=[imagenet]", "model_set=osmr_test"]  # fmt: skip
        # The reference: a local run of the compared tables (figures, provenance left out).
        run = snakemake("--cores", "2", "--directory", str(local), *urls, "--",
                        *(f"results/{name}" for name in COMPARED))  # fmt: skip
        assert run.returncode == 0, _fail("local reference run", run)

        start = time.perf_counter()
        # docs/cluster.md step 1, on the login node: fetch the weights.
        # Test-only: --directory (this test's copy of .test) and --config (the loopback server).
        fetch = snakemake("--cores", "4", "--until", "download_weights", "--directory", str(remote),
                          *urls)  # fmt: skip
        assert fetch.returncode == 0, _fail("step 1 (fetch weights)", fetch)
        seen = len(base.requests)
        # docs/cluster.md step 2: submit everything else to Slurm.
        # Test-only: --profile tests/slurm/profile (squeue status polling, 2 s first check, keep
        # the job logs, no account) plus --directory and --config as above.
        submit = snakemake("--workflow-profile", "workflow/profiles/slurm",
                           "--profile", str(TEST_PROFILE), "--directory", str(remote),
                           *urls)  # fmt: skip
        wall = time.perf_counter() - start
        requests = list(base.requests)[seen:]
    print(f"\nSlurm run of the .test workflow (fetch + submit): {wall:.1f} s")
    assert submit.returncode == 0, _fail("step 2 (Slurm submission)", submit)
    return Runs(local, remote, fetch, submit, requests, wall)


def _job_stats(log: str) -> dict[str, int]:
    """Jobs per rule from Snakemake's "Job stats" table."""
    block = log.split("Job stats:", 1)[1].split("\n\n", 1)[0]
    rows = re.finditer(r"^(\w+)\s+(\d+)$", block, re.M)
    return {m[1]: int(m[2]) for m in rows if m[1] != "total"}


def _submissions(log: str) -> dict[str, Path]:
    """Slurm job id → its plugin log, from "Job N has been submitted with SLURM jobid X"."""
    pattern = r"has been submitted with SLURM jobid (\d+) \(log: (\S+)\)"
    return {m[1]: Path(m[2]) for m in re.finditer(pattern, log)}


def test_every_compute_job_went_through_sbatch(runs: Runs, slurm_cluster: Cluster) -> None:
    log = runs.submit.stdout + runs.submit.stderr
    stats = _job_stats(log)
    local_rules = set(re.findall(r"^localrule (\w+):", log, re.M))
    remote_rules = {rule: n for rule, n in stats.items() if rule not in local_rules}
    # every rule of the whole study's DAG (all seven models), downloads (step 1) and `all`
    # aside, ran in the osmr_test run, each through Slurm
    plan = snakemake("-n", "--forceall", "--quiet", "rules", "--directory", str(runs.slurm),
                     "--config", "studies=[imagenet]")  # fmt: skip
    assert plan.returncode == 0, _fail("dry run of the whole study", plan)
    every = set(_job_stats(plan.stdout + plan.stderr)) - {"download_weights", "all"}
    assert set(remote_rules) == every and len(every) > 10, (stats, every)
    assert local_rules == {"all"}, f"local jobs in the Slurm run: {local_rules}"
    assert "download_weights" not in stats, "step 2 downloaded weights on a compute node"

    jobs = _submissions(log)
    slurm_logs = runs.slurm / ".snakemake" / "slurm_logs"
    per_rule = {
        rule: len(list((slurm_logs / f"rule_{rule}").rglob("*.log"))) for rule in remote_rules
    }
    assert per_rule == remote_rules, f"Slurm logs per rule {per_rule} vs jobs {remote_rules}"
    assert len(jobs) == sum(remote_rules.values()), (len(jobs), remote_rules)

    ctld = slurm_cluster.ctld_log.read_text()
    for job_id, plugin_log in jobs.items():
        assert plugin_log.is_file(), plugin_log
        assert slurm_logs in plugin_log.parents, plugin_log
        assert re.search(rf"JobId={job_id} WEXITSTATUS 0\b", ctld), f"job {job_id} in slurmctld"
        text = plugin_log.read_text()
        # the job step ran Snakemake on the node Slurm allocated
        assert "--executor slurm-jobstep" in text and "Finished jobid: 0" in text, plugin_log


def test_compute_jobs_never_fetch(runs: Runs) -> None:
    assert runs.requests_during_submit == [], runs.requests_during_submit


def _drop_timing(table: pd.DataFrame) -> pd.DataFrame:
    return table.drop(columns=[c for c in table.columns if TIMING.search(str(c))])


@pytest.mark.parametrize("name", COMPARED)
def test_tables_equal_local_run(runs: Runs, name: str) -> None:
    local = pd.read_csv(runs.local / "results" / name, sep="\t")
    slurm = pd.read_csv(runs.slurm / "results" / name, sep="\t")
    assert len(local) > 0
    pd.testing.assert_frame_equal(_drop_timing(slurm), _drop_timing(local), obj=name)


def test_spectra_equal_local_run(runs: Runs) -> None:
    local = sorted((runs.local / "results" / "imagenet" / "spectra").glob("*.parquet"))
    slurm = sorted((runs.slurm / "results" / "imagenet" / "spectra").glob("*.parquet"))
    assert [p.name for p in slurm] == [p.name for p in local] and local
    for a, b in zip(local, slurm, strict=True):
        pd.testing.assert_frame_equal(
            _drop_timing(pd.read_parquet(b)), _drop_timing(pd.read_parquet(a)), obj=a.name
        )
