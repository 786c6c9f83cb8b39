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

from htsr import osmr, zoo

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
                before.repo_url, before.release_tag, before.name, before.error)
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
