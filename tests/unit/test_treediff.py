"""compare_trees: equal, close, different and missing files of two result trees."""

from __future__ import annotations

import json

import numpy as np

from oncoflow.treediff import compare_trees


def test_compare_trees_sorts_every_file(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for root, score, auc, extra in ((a, 0.5, 0.81, "x"), (b, 0.5 + 1e-9, 0.71, "y")):
        (root / "s/train").mkdir(parents=True)
        (root / "s/train/predictions.csv").write_text(f"patient_id,y_score\nP1,{score}\n")
        (root / "s/metrics.json").write_text(json.dumps({"auc": auc, "wall_s": auc}))
        (root / "s/model.pt").write_bytes(extra.encode())
        (root / "s/same.txt").write_text("same")
        np.savez(root / "s/crops.npz", image=np.ones(3))
    (a / "s/only.csv").write_text("a\n1\n")
    (b / "s/.snakemake").mkdir()
    (b / "s/.snakemake/meta").write_text("ignored")
    report = compare_trees(a, b)
    assert report["same"] == ["s/crops.npz", "s/same.txt"]
    assert report["close"] == ["s/train/predictions.csv"]
    assert report["different"] == [["s/metrics.json", "/auc: 0.81 vs 0.71 (1 difference(s))"]]
    assert report["binary"] == ["s/model.pt"]
    assert report["only_a"] == ["s/only.csv"]
    assert report["only_b"] == []
