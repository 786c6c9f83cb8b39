"""benchmarks/rehearse_default.py's table rewriting: a rehearsal copy of the model tables differs
only in the hash cells, and those verify the generated files through the real download code.

(The rehearsal itself runs the default pipeline for about an hour; it is not run in CI.)"""

from __future__ import annotations

import hashlib
import sys
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from htsr.weights import osmr, zoo

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "tests"))
from rehearse_default import HASH_CELLS, build_weights, rehearsal_table  # noqa: E402
from zoo_server import serve_zoo  # noqa: E402

#: two small models of the default run, one per format (torchvision .pth, OSMR store zip)
MODELS = ["paper2019.tv.squeezenet1_1", "paper2019.osmr.fdmobilenet_wd4"]


@pytest.fixture(scope="module")
def rehearsal(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("rehearsal")
    table = pd.read_csv(ROOT / "config/studies/imagenet_paper.tsv", sep="\t", dtype=str,
                        keep_default_na=False)  # fmt: skip
    rows = table[table["model"].isin(MODELS)]
    files = build_weights(rows, tmp / "served")
    return table, rows, files, rehearsal_table(table, files), tmp


def test_only_the_hash_cells_change(rehearsal) -> None:
    table, rows, files, new, _ = rehearsal
    assert list(new.columns) == list(table.columns) and len(new) == len(table)
    other = [c for c in table.columns if c not in HASH_CELLS]
    pd.testing.assert_frame_equal(new[other], table[other])
    changed = (new != table).any(axis=1)
    # exactly the rows reading the two generated files (a weights key may be shared)
    assert set(new.loc[changed, "weights"]) == set(rows["weights"]) == set(files)
    for _, row in new[changed].iterrows():
        old = table.loc[table["model"] == row["model"]].iloc[0]
        assert len(row["url"]) == len(old["url"]) and row["url"] != old["url"]
        if row["source"] == "pytorchcv":
            store, before = osmr.parse_store_url(row["url"]), osmr.parse_store_url(old["url"])
            assert (store.repo_url, store.release_tag, store.name, store.error) == (
                before.repo_url,
                before.release_tag,
                before.name,
                before.error,
            )
            with zipfile.ZipFile(files[row["weights"]]) as zf:
                assert zf.namelist() == [store.member]  # the store's inner name, new sha1[:8]
                assert hashlib.sha1(zf.read(store.member)).hexdigest() == row["sha1"]
        else:
            assert row["url"].startswith("https://download.pytorch.org/models/squeezenet1_1-")
            assert row["url"].rsplit("/", 1)[1] == files[row["weights"]].name


def test_rewritten_rows_verify_the_generated_files(rehearsal) -> None:
    _, rows, files, new, tmp = rehearsal
    served = {str(r["model"]): files[r["weights"]] for _, r in rows.iterrows()}
    with serve_zoo(served) as base:
        for _, row in new[new["model"].isin(MODELS)].iterrows():
            dest = zoo.weights_path(row, tmp / "weights")
            got = zoo.download_weights(row, dest, torchvision_base_url=base,
                                       pytorchcv_base_url=base, retries=0)  # fmt: skip
            assert got["fetched"] and dest.is_file()
        # the original rows name the real files' hashes, which the generated ones do not match
        original = rows[rows["source"] == "torchvision"].iloc[0]
        with pytest.raises(Exception, match="squeezenet1_1"):
            zoo.download_weights(original, tmp / "original.pth", torchvision_base_url=base,
                                 retries=0)  # fmt: skip


def test_report_sums_the_benchmark_files_per_rule(tmp_path: Path) -> None:
    """Per rule: jobs, summed wall and CPU seconds, peak RSS against the job's declared mem_mb
    (from the Snakemake log's job blocks, the last attempt's when a job was retried)."""
    from rehearse_default import benchmark_table

    header = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
    jobs = {"model_spectra/imagenet/a.tsv": (10.0, 700.0, 9.0),
            "model_spectra/imagenet/b.tsv": (20.0, 2500.0, 18.0),
            "aggregate/imagenet.tsv": (5.0, 300.0, 4.0)}  # fmt: skip
    log = []
    for rel, (s, rss, cpu) in jobs.items():
        path = tmp_path / "logs" / "benchmarks" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(header + f"{s}\t0:00:{s:02.0f}\t{rss}\t1\t1\t1\t0\t0\t50\t{cpu}\n")
        rule = rel.split("/")[0]
        mem = 2048 if rule == "aggregate" else 3000
        log.append(f"[Mon Dec  7 18:00:00 2026]\nrule {rule}:\n    output: x\n"
                   f"    benchmark: logs/benchmarks/{rel}\n    threads: 1\n"
                   f"    resources: tmpdir=/tmp, mem_mb={mem}, mem_mib=1\n")  # fmt: skip
    # b was retried with twice the memory: the last block counts
    log.append("[Mon Dec  7 18:10:00 2026]\nrule model_spectra:\n"
               "    benchmark: logs/benchmarks/model_spectra/imagenet/b.tsv\n"
               "    resources: tmpdir=/tmp, runtime=3, mem_mb=6000, mem_mib=1\n")  # fmt: skip
    table = benchmark_table(tmp_path, "\n".join(log))
    spectra, agg = table.loc["model_spectra"], table.loc["aggregate"]
    assert (spectra["jobs"], spectra["wall_s"], spectra["cpu_s"]) == (2, 30.0, 27.0)
    assert (spectra["peak_rss_mb"], spectra["mem_mb"]) == (2500.0, 6000)
    assert spectra["worst_rss_share"] == pytest.approx(max(700 / 3000, 2500 / 6000))
    assert (agg["jobs"], agg["mem_mb"], agg["worst_rss_share"]) == (1, 2048, 300 / 2048)


def test_a_fixed_port_serves_the_same_urls_again(rehearsal) -> None:
    """--analysis-only reruns on the first run's port: the download rule's url param is then
    unchanged and Snakemake keeps the downloaded files."""
    import socket

    _, rows, files, _, _ = rehearsal
    model = rows["model"].iloc[0]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    bases = []
    for _ in range(2):
        with serve_zoo({model: files[rows["weights"].iloc[0]]}, port=port) as base:
            bases.append(str(base))
            assert base.endswith(f":{port}")
    assert bases[0] == bases[1]


def test_set_aside_keeps_the_weights_and_moves_the_analysis(tmp_path: Path) -> None:
    from rehearse_default import set_aside

    for rel in ("work/results/imagenet/models.tsv", "work/logs/aggregate/imagenet.log",
                "work/resources/weights/a.pth", "snakemake.log", "timing.json"):  # fmt: skip
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(rel)
    aside = set_aside(tmp_path)
    assert aside.parent == tmp_path / "previous"
    assert (aside / "results/imagenet/models.tsv").read_text() == "work/results/imagenet/models.tsv"
    assert (aside / "logs/aggregate/imagenet.log").is_file() and (aside / "timing.json").is_file()
    assert not (tmp_path / "work/results").exists() and not (tmp_path / "work/logs").exists()
    assert (tmp_path / "work/resources/weights/a.pth").is_file()  # the downloads stay
    assert (tmp_path / "snakemake.log").is_file()  # copied, not moved
