"""Rehearse the default run at full scale, offline: every weight file the default config
downloads, built at random init with the real shapes, served from 127.0.0.1, and the default
``snakemake --cores N`` run against it end to end; then its cost, from Snakemake's own
``benchmark:`` files.

Steps (each prints what it did; everything is written under ``--out``, nothing in the
repository):

1. **Selection**: the rows the default run downloads (``config/config.yaml``: its studies and
   ``model_set``, each study's default sets, e.g. imagenet's ``[paper2019, natcomm2021]``), one
   weight file per ``weights`` key. ``--subset N`` keeps the N smallest models of each source
   (a smoke run: ``--config model_set=[those keys]``).
2. **Weights** (``OUT/served/``): each file's architecture at random init (``torch.manual_seed
   (0)``, ``htsr.weights.zoo.build_model``: today's torchvision and pytorchcv classes, the shapes of
   the real file), saved as its source serves it (``tests/zoo_server.make_weight_files``): a
   torchvision ``.pth`` named ``{stem}-{sha256 prefix}.pth`` like the real one, an OSMR store
   ``.pth.zip`` holding ``{name}-{error}-{sha1[:8]}.pth``, in torch's legacy format where the
   store's file is. ``OUT/served/manifest.json`` lets a rerun skip the files already built.
3. **Tables** (``OUT/work/config/``): a copy of ``config/`` whose model tables differ only in the
   cells that carry a file's hash (:func:`rehearsal_table`: a torchvision row's hash prefix in
   its ``url`` and its ``sha256`` if set; a pytorchcv row's ``sha1`` and the ``sha1[:8]`` of its
   ``url``), so the download rule verifies the generated files exactly as it would the real ones.
4. **Run**: ``tests/zoo_server.serve_zoo`` on 127.0.0.1 and, in ``OUT/work``, ``snakemake
   --cores N --config torchvision_url=<server> pytorchcv_url=<server>`` (the two mirror keys of
   the config; nothing else overridden), with this checkout's ``src`` first on ``PYTHONPATH``.
   Its output goes to ``OUT/snakemake.log``.
5. **Report** (printed and written to ``OUT/rehearsal.md``): per rule, from the ``benchmark:``
   files (``logs/benchmarks/{rule}/...tsv``: wall ``s``, ``cpu_time``, ``max_rss`` of each job),
   the jobs, wall and CPU seconds, peak RSS against the ``mem_mb`` the rule declared (parsed from
   the Snakemake log); the run's wall time, total CPU time, job count and disk used.

Usage::

    python benchmarks/rehearse_default.py --out /tmp/rehearsal --cores 2 --subset 2   # smoke
    nice -n 5 python benchmarks/rehearse_default.py --out /tmp/rehearsal --cores 2   # full
    python benchmarks/rehearse_default.py --out /tmp/rehearsal --report-only        # re-report

The analysis alone, once the weights are on disk: ``--analysis-only`` moves ``OUT/work/results``
and ``OUT/work/logs`` aside (to ``OUT/previous/``) and runs the full command again on the
``--port`` the first run used (the server's address is part of each download's ``url`` param,
so another port would download every file again); the files are built and downloaded already
(their jobs are up to date), so the run and the report count every other job. Give the first
run a fixed ``--port`` too, or read its port from ``OUT/timing.json``.

``--delete-weights`` removes ``OUT/served`` and ``OUT/work/resources/weights`` after the run
(10.6 GB each at full scale).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))
from bench_scheduler import own_cpu_s  # noqa: E402 - Snakemake's own CPU, read from /proc

#: The cells of a model table that carry a weight file's hash; :func:`rehearsal_table` changes
#: these and nothing else.
HASH_CELLS = ("url", "sha256", "sha1")
_TV_HASH = re.compile(r"-([0-9a-f]{6,64})(\.[A-Za-z]+)$")


# --------------------------------------------------------------------------- selection


def default_selection(config_dir: Path = ROOT / "config") -> tuple[pd.DataFrame, list[str]]:
    """``(rows, table paths)``: the model rows the default config runs (every study of
    ``config.yaml``, its ``model_set`` or each study's own) and the model tables they come from,
    as the workflow's ``common.smk`` selects them."""
    from htsr.studies import study as studies

    config = yaml.safe_load((config_dir / "config.yaml").read_text())
    study_dir = ROOT / config.get("study_dir", "config/studies")
    frames, tables = [], []
    for name in config["studies"]:
        spec = yaml.safe_load((study_dir / f"{name}.yaml").read_text())
        study = studies.study_from_dict(name, spec)
        cwd = os.getcwd()
        try:
            os.chdir(ROOT)  # table paths are relative to the working directory
            table = study.read_table(config.get("experiment_grid", "default"))
        finally:
            os.chdir(cwd)
        rows, unknown = study.select(table, config.get("model_set"))
        if unknown:
            raise ValueError(f"study {name}: model_set names {unknown} match no model")
        frames.append(rows.assign(study=name))
        tables += [t for t in study.tables if t not in tables]
    return pd.concat(frames, ignore_index=True), tables


def subset(rows: pd.DataFrame, n: int) -> pd.DataFrame:
    """The ``n`` models with the fewest parameters of each source (at least one file each)."""
    rows = rows.assign(_params=pd.to_numeric(rows["num_params"], errors="coerce"))
    files = rows.drop_duplicates("weights").sort_values("_params")
    keep = files.groupby("source").head(n)["weights"]
    return rows[rows["weights"].isin(keep)].drop(columns="_params")


# --------------------------------------------------------------------------- weights


def _sha(path: Path, algo: str) -> str:
    h = hashlib.new(algo)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def build_weights(rows: pd.DataFrame, served: Path) -> dict[str, Path]:
    """``{weights key: served file}``, building the files missing from the manifest."""
    from zoo_server import make_weight_files

    served.mkdir(parents=True, exist_ok=True)
    manifest_path = served / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    files = {k: served / v for k, v in manifest.items() if (served / v).exists()}
    todo = rows.drop_duplicates("weights")
    todo = todo[~todo["weights"].isin(list(files))]
    for i, (_, row) in enumerate(todo.iterrows(), 1):
        start = time.perf_counter()
        made = make_weight_files([row.to_dict()], served)[str(row["model"])]
        made = _match_hash_length(row, made)
        files[str(row["weights"])] = made
        manifest[str(row["weights"])] = made.relative_to(served).as_posix()
        tmp = manifest_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True))
        tmp.replace(manifest_path)
        mb = made.stat().st_size / 1e6
        print(f"  [{i}/{len(todo)}] {row['weights']}: {made.name} ({mb:.0f} MB,"
              f" {time.perf_counter() - start:.0f} s)", flush=True)  # fmt: skip
    return files


def _match_hash_length(row: Mapping[str, Any], path: Path) -> Path:
    """A torch.hub-style file renamed so its hash prefix has the real name's length."""
    match = _TV_HASH.search(str(row.get("url") or ""))
    if row["source"] == "pytorchcv" or match is None or path.parent.name != "models":
        return path
    stem = _TV_HASH.sub("", path.name)
    new = path.with_name(f"{stem}-{_sha(path, 'sha256')[: len(match[1])]}{match[2]}")
    path.replace(new)
    return new


# --------------------------------------------------------------------------- tables


def rehearsal_table(table: pd.DataFrame, files: Mapping[str, Path]) -> pd.DataFrame:
    """A copy of a model table in which every row whose ``weights`` key is in ``files`` carries
    the hashes of that generated file, and nothing else changed.

    torchvision (and other torch.hub-style ``url``) rows: the hex prefix in the url's file name
    becomes the generated file's sha256 prefix of the same length (the served file has that
    name), and a non-empty ``sha256`` cell its full sha256. pytorchcv rows: ``sha1`` becomes the
    SHA-1 of the ``.pth`` inside the generated zip and the url's ``{sha1[:8]}`` with it (the
    store URL of the same repository, release, name and error). Raises ``ValueError`` for a row
    whose url has no hash to replace."""
    from htsr.weights import osmr

    out = table.copy()
    for i, row in out.iterrows():
        path = files.get(str(row.get("weights", "")))
        if path is None:
            continue
        if row["source"] == "pytorchcv":
            store = osmr.parse_store_url(row["url"])
            with zipfile.ZipFile(path) as zf:
                (member,) = [n for n in zf.namelist() if n.endswith(".pth")]
                sha1 = hashlib.sha1(zf.read(member)).hexdigest()
            out.at[i, "sha1"] = sha1
            out.at[i, "url"] = osmr.store_url(store.name, store.error, sha1,
                                              store.release_tag, store.repo_url)  # fmt: skip
        else:
            sha256 = _sha(path, "sha256")
            match = _TV_HASH.search(str(row["url"]))
            if match is None:
                raise ValueError(f"{row['model']}: url {row['url']!r} carries no hash to replace")
            out.at[i, "url"] = _TV_HASH.sub(f"-{sha256[: len(match[1])]}{match[2]}", row["url"])
            if str(row.get("sha256") or ""):
                out.at[i, "sha256"] = sha256
    changed = [c for c in out.columns if c not in HASH_CELLS and not out[c].equals(table[c])]
    assert not changed, changed  # nothing but the hash cells
    return out


def write_rehearsal_config(config_dir: Path, tables: list[str], files: Mapping[str, Path]) -> None:
    """``config_dir``: a copy of the repository's ``config/`` with ``tables`` rewritten."""
    if config_dir.exists():
        shutil.rmtree(config_dir)
    shutil.copytree(ROOT / "config", config_dir)
    for rel in tables:
        src = ROOT / rel
        table = pd.read_csv(src, sep="\t", dtype=str, keep_default_na=False)
        new = rehearsal_table(table, files)
        dest = config_dir.parent / rel
        new.to_csv(dest, sep="\t", index=False, lineterminator="\n")
        n = int((new != table).any(axis=1).sum())
        print(f"  {rel}: {n} rows carry the generated files' hashes")


# --------------------------------------------------------------------------- run


def run_snakemake(
    work: Path,
    base_url: str,
    cores: int,
    extra: list[str],
    log: Path,
    options: list[str] | None = None,
) -> tuple[float, float, float | None]:
    """The default command in ``work`` against the server (``options``: further Snakemake
    options, none by default); returns its wall seconds, the CPU seconds of Snakemake and every
    job it ran (``getrusage(RUSAGE_CHILDREN)``, exact, where the ``benchmark:`` files sample each
    job's CPU time every few seconds and miss short bursts), and those of Snakemake's own
    process (read from ``/proc`` every second while it runs; None off Linux)."""
    env = dict(os.environ)
    for var in ("HTSR_OFFLINE", "HF_HUB_OFFLINE", "HTSR_TORCHVISION_URL", "HTSR_PYTORCHCV_URL"):
        env.pop(var, None)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
    env.setdefault("MPLBACKEND", "Agg")
    cmd = [
        sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"),
        "--directory", str(work), "--cores", str(cores), "--workflow-profile", "none",
        *(options or []),
        "--config", f"torchvision_url={base_url}", f"pytorchcv_url={base_url}", *extra,
    ]  # fmt: skip
    print("  " + " ".join(cmd), flush=True)
    start = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    own = None
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, cwd=work, env=env, stdout=fh, stderr=subprocess.STDOUT)
        while proc.poll() is None:
            own = own_cpu_s(proc.pid) or own
            try:
                proc.wait(timeout=1.0)
            except subprocess.TimeoutExpired:
                pass
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    if proc.returncode != 0:
        raise SystemExit(f"snakemake failed (exit {proc.returncode}); see {log}")
    return wall, cpu, own


# --------------------------------------------------------------------------- report


def declared_mem_mb(snakemake_log: str) -> dict[str, int]:
    """``{benchmark file: mem_mb}`` of every job in a Snakemake log (its job blocks print
    ``benchmark: PATH`` and ``resources: ..., mem_mb=N, ...``)."""
    declared: dict[str, int] = {}
    for block in re.split(r"\n(?=\[[^\]]+\]\n|(?:local)?rule \w+:)", snakemake_log):
        bench = re.search(r"^\s+benchmark: (\S+)$", block, re.M)
        mem = re.search(r"^\s+resources: .*\bmem_mb=(\d+)", block, re.M)
        if bench and mem:
            declared[bench[1]] = int(mem[1])
    return declared


def benchmark_table(work: Path, snakemake_log: str) -> pd.DataFrame:
    """One row per rule: jobs, wall s, CPU s, peak max_rss (MB) and the largest declared mem_mb
    of a job of the rule, and the peak's share of what that job declared."""
    declared = declared_mem_mb(snakemake_log)
    rows = []
    for path in sorted((work / "logs" / "benchmarks").rglob("*.tsv")):
        rel = path.relative_to(work).as_posix()
        # logs/benchmarks/{rule}/{wildcards}.tsv, or logs/benchmarks/{rule}.tsv for a rule
        # without wildcards
        rule = path.relative_to(work / "logs" / "benchmarks").parts[0].removesuffix(".tsv")
        bench = pd.read_csv(path, sep="\t").iloc[-1]
        rss = pd.to_numeric(bench["max_rss"], errors="coerce")
        rows.append({"rule": rule, "s": float(bench["s"]),
                     "cpu_s": float(pd.to_numeric(bench["cpu_time"], errors="coerce")),
                     "max_rss_mb": rss, "mem_mb": declared.get(rel, float("nan")),
                     "file": rel})  # fmt: skip
    jobs = pd.DataFrame(rows)
    if jobs.empty:
        return jobs
    jobs["rss_share"] = jobs["max_rss_mb"] / jobs["mem_mb"]
    return (
        jobs.groupby("rule")
        .agg(
            jobs=("s", "size"),
            wall_s=("s", "sum"),
            cpu_s=("cpu_s", "sum"),
            peak_rss_mb=("max_rss_mb", "max"),
            mem_mb=("mem_mb", "max"),
            worst_rss_share=("rss_share", "max"),
        )  # fmt: skip
        .sort_values("cpu_s", ascending=False)
    )


def _du(path: Path) -> float:
    """GB of the files under ``path`` (0 if absent)."""
    if not path.exists():
        return 0.0
    files = (p for p in path.rglob("*") if p.is_file() and not p.is_symlink())
    return sum(p.stat().st_size for p in files) / 1e9


def report(
    out: Path,
    wall: float | None,
    build_s: float | None,
    cpu_all: float | None = None,
    cpu_own: float | None = None,
) -> str:
    work = out / "work"
    log_path = out / "snakemake.log"
    log = log_path.read_text() if log_path.exists() else ""
    table = benchmark_table(work, log)
    lines = [
        "| rule | jobs | wall s (sum) | CPU s | peak RSS MB | mem_mb declared | worst RSS/mem_mb |",
        "|---|---|---|---|---|---|---|",
    ]
    for rule, r in table.iterrows():
        lines.append(
            f"| {rule} | {int(r.jobs)} | {r.wall_s:.0f} | {r.cpu_s:.0f} | {r.peak_rss_mb:.0f} "
            f"| {r.mem_mb:.0f} | {r.worst_rss_share:.2f} |"
        )
    total_jobs = int(table["jobs"].sum()) if len(table) else 0
    stats = re.search(r"Job stats:\n(.*?)\n\n", log, re.S)
    lines += [
        "",
        f"jobs with a benchmark file: {total_jobs}"
        + (f"; Snakemake's job stats:\n```\n{stats[1]}\n```" if stats else ""),
        f"CPU time of the jobs, as their benchmark files sample it: {table['cpu_s'].sum():.0f} s"
        f" ({table['cpu_s'].sum() / 60:.1f} CPU-minutes)"
        if len(table)
        else "",
        f"snakemake wall time: {wall:.0f} s ({wall / 60:.1f} min)" if wall else "",
        f"CPU time of Snakemake and all its jobs (getrusage): {cpu_all:.0f} s"
        f" ({cpu_all / 60:.1f} CPU-minutes)"
        if cpu_all
        else "",
        f"of which Snakemake's own process (scheduling, not jobs): {cpu_own:.0f} s"
        f" ({cpu_own / 60:.1f} CPU-minutes)"
        if cpu_own
        else "",
        f"building the weight files: {build_s:.0f} s" if build_s else "",
        f"disk: served weights {_du(out / 'served'):.2f} GB, downloaded weights"
        f" {_du(work / 'resources'):.2f} GB, results {_du(work / 'results'):.3f} GB,"
        f" logs {_du(work / 'logs'):.3f} GB",
    ]
    text = "\n".join(line for line in lines if line != "")
    (out / "rehearsal.md").write_text(text + "\n")
    return text


# --------------------------------------------------------------------------- main


def set_aside(out: Path) -> Path:
    """Move a finished rehearsal's ``work/results`` and ``work/logs`` to
    ``out/previous/{time}/`` (with copies of its ``snakemake.log``, ``rehearsal.md`` and
    ``timing.json``), leaving the weight files and Snakemake's records, so the next run redoes
    the analysis and nothing else; returns that folder."""
    aside = out / "previous" / time.strftime("%Y%m%dT%H%M%S")
    aside.mkdir(parents=True)
    for name in ("results", "logs"):
        if (out / "work" / name).exists():
            shutil.move(out / "work" / name, aside / name)
    for name in ("snakemake.log", "rehearsal.md", "timing.json"):
        if (out / name).exists():
            shutil.copy2(out / name, aside / name)
    return aside


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for everything")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--subset", type=int, default=None,
                        help="only the N smallest models of each source")  # fmt: skip
    parser.add_argument("--report-only", action="store_true",
                        help="print the report of the run in --out (finished or not)")  # fmt: skip
    parser.add_argument("--snakemake-option", action="append", default=[],
                        help="a further Snakemake option, e.g. --snakemake-option=--scheduler"
                        " --snakemake-option=greedy (repeatable; none by default)")  # fmt: skip
    parser.add_argument("--port", type=int, default=None,
                        help="the loopback server's port (default: the previous run's, from"
                        " OUT/timing.json, else any free port)")  # fmt: skip
    parser.add_argument("--analysis-only", action="store_true",
                        help="move OUT/work/results and logs aside and run again on the weights"
                        " already downloaded")  # fmt: skip
    parser.add_argument("--delete-weights", action="store_true",
                        help="remove the weight files (served, downloaded) afterwards")  # fmt: skip
    args = parser.parse_args()
    out = args.out.resolve()
    if args.report_only:
        timing_path = out / "timing.json"  # absent while the run goes on: no wall time yet
        timing = json.loads(timing_path.read_text()) if timing_path.exists() else {}
        print(report(out, timing.get("wall_s"), timing.get("build_s"), timing.get("cpu_s"),
                     timing.get("own_cpu_s")))  # fmt: skip
        return
    from zoo_server import serve_zoo

    rows, tables = default_selection()
    extra: list[str] = []
    if args.subset is not None:
        rows = subset(rows, args.subset)
        extra = [f"model_set=[{','.join(rows['model'])}]"]
    print(f"1. {len(rows)} models, {rows['weights'].nunique()} weight files", flush=True)
    start = time.perf_counter()
    print(f"2. weights in {out / 'served'}", flush=True)
    files = build_weights(rows, out / "served")
    files = {k: v for k, v in files.items() if k in set(rows["weights"])}
    build_s = time.perf_counter() - start
    print(f"3. rehearsal tables in {out / 'work' / 'config'}", flush=True)
    work = out / "work"
    work.mkdir(parents=True, exist_ok=True)
    write_rehearsal_config(work / "config", tables, files)
    by_model = {str(r["model"]): files[str(r["weights"])]
                for _, r in rows.drop_duplicates("weights").iterrows()}  # fmt: skip
    print("4. snakemake", flush=True)
    timing_path = out / "timing.json"
    previous = json.loads(timing_path.read_text()) if timing_path.exists() else {}
    port = args.port if args.port is not None else previous.get("port", 0)
    if args.analysis_only:
        if not port:
            raise SystemExit("--analysis-only needs the first run's --port (none in timing.json)")
        print(f"  previous results and logs moved to {set_aside(out)}", flush=True)
    with serve_zoo(by_model, port=port) as base:
        port = int(base.rsplit(":", 1)[1])
        timing_path.write_text(json.dumps({"build_s": build_s, "port": port}))
        wall, cpu, own = run_snakemake(
            work, base, args.cores, extra, out / "snakemake.log", args.snakemake_option
        )
    timing = {"wall_s": wall, "build_s": build_s, "cpu_s": cpu, "own_cpu_s": own, "port": port,
              "analysis_only": args.analysis_only, "options": args.snakemake_option}  # fmt: skip
    (out / "timing.json").write_text(json.dumps(timing))
    print(f"5. report ({out / 'rehearsal.md'})", flush=True)
    print(report(out, wall, build_s, cpu, own))
    if args.delete_weights:
        shutil.rmtree(out / "served", ignore_errors=True)
        shutil.rmtree(work / "resources" / "weights", ignore_errors=True)


if __name__ == "__main__":
    main()
