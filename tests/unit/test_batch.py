"""oncoflow.batch: one failing item never costs the others; records, logs and the study index."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from oncoflow import batch
from oncoflow.batch import BatchItem, folder_index, run_batch, script_main
from oncoflow.errors import OncoflowError

REPO = Path(__file__).resolve().parents[2]


def _main(argv):
    """A stage script's main: writes --out, fails like the scripts do on a bad patient."""
    patient, out = argv
    if patient == "BAD":
        print(f"error: patient {patient}: images/{patient}/ct.nii.gz: cannot read", file=sys.stderr)
        return 1
    if patient == "RAISES":
        raise RuntimeError("unexpected")
    logging.getLogger("oncoflow.test").info("working on %s", patient)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(patient)
    return 0


def test_one_bad_item_fails_alone(tmp_path):
    items = [
        BatchItem(p, [p, str(tmp_path / "b" / p / "x.txt")]) for p in ("A", "BAD", "RAISES", "C")
    ]
    summary = run_batch(
        items, _main, tmp_path / "b", label="test", progress_every_s=0, provenance={"x": 1}
    )
    assert summary["n_failed"] == 2
    assert [summary["items"][k]["ok"] for k in ("A", "BAD", "RAISES", "C")] == [
        True,
        False,
        False,
        True,
    ]
    assert (tmp_path / "b/A/x.txt").read_text() == "A"
    assert (tmp_path / "b/C/x.txt").read_text() == "C"
    error = (tmp_path / "b/BAD.error").read_text()
    assert error == "error: patient BAD: images/BAD/ct.nii.gz: cannot read\n"
    assert "RuntimeError: unexpected" in (tmp_path / "b/RAISES.error").read_text()
    assert not (tmp_path / "b/A.error").exists()
    # each item's log holds its own records only
    assert "working on A" in (tmp_path / "b/A.log").read_text()
    assert "working on C" not in (tmp_path / "b/A.log").read_text()
    record = json.loads((tmp_path / "b/batch.json").read_text())
    assert record["items"]["A"]["wall_s"] >= 0
    assert record["items"]["A"]["cpu_s"] >= 0
    assert record["provenance"] == {"x": 1}


def test_a_rerun_clears_an_old_error(tmp_path):
    out = tmp_path / "b"
    run_batch([BatchItem("BAD", ["BAD", str(out / "x")])], _main, out)
    assert (out / "BAD.error").exists()
    run_batch([BatchItem("BAD", ["GOOD", str(out / "x")])], _main, out)
    assert not (out / "BAD.error").exists()


@pytest.mark.parametrize(
    "data", [{"key": "../up", "argv": []}, {"key": "", "argv": []}, {"key": "a", "argv": "x"}]
)
def test_bad_items_are_refused(data):
    with pytest.raises(OncoflowError):
        BatchItem.from_mapping(data)


def test_index_lists_files_and_sizes(tmp_path):
    for patient, size in (("P1", 3), ("P2", 5)):
        (tmp_path / patient / "0").mkdir(parents=True)
        (tmp_path / patient / "0" / "a.npz").write_bytes(b"x" * size)
    index = folder_index([tmp_path / "P1", tmp_path / "P2"])
    assert index == {"folders": {"P1": {"0/a.npz": 3}, "P2": {"0/a.npz": 5}}}
    with pytest.raises(OncoflowError, match="P3"):
        folder_index([tmp_path / "P3"])


def test_script_main_imports_a_stage_script():
    main = script_main(REPO / "scripts" / "pet_metrics.py")
    assert callable(main)
    with pytest.raises(OncoflowError, match="not found"):
        script_main(REPO / "scripts" / "no_such_script.py")


def _publish(tmp_path, *args):
    return subprocess.run(
        ["sh", str(REPO / "scripts/publish.sh"), *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )


def test_publish_links_outputs_or_fails_with_the_items_error(tmp_path):
    staging = tmp_path / "b"
    items = [BatchItem(p, [p, str(staging / p / "x.txt")]) for p in ("A", "BAD")]
    run_batch(items, _main, staging)
    ok = _publish(tmp_path, staging, "A", tmp_path / "logs/A.log", "A", tmp_path / "out/A")
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "out/A/x.txt").read_text() == "A"
    assert (tmp_path / "out/A/x.txt").stat().st_ino == (staging / "A/x.txt").stat().st_ino
    assert "working on A" in (tmp_path / "logs/A.log").read_text()
    bad = _publish(tmp_path, staging, "BAD", tmp_path / "logs/BAD.log", "BAD", tmp_path / "out/B")
    assert bad.returncode == 1
    # the job's stderr is appended to the same log: the message reaches it exactly once
    seen = (tmp_path / "logs/BAD.log").read_text() + bad.stderr
    assert seen.count("patient BAD: images/BAD/ct.nii.gz") == 1
    assert not (tmp_path / "out/B").exists()
    missing = _publish(tmp_path, staging, "A", tmp_path / "l.log", "A/none", tmp_path / "o")
    assert missing.returncode == 1
    assert "left no output for A" in missing.stderr


def test_plan_batches_cuts_sorted_patients_into_equal_chunks():
    patients = [f"P{i:02d}" for i in range(10)][::-1]
    chunks = batch.plan_batches(patients, 4)
    assert chunks == [["P00", "P01", "P02"], ["P03", "P04", "P05"], ["P06", "P07", "P08", "P09"]]
    assert batch.plan_batches(patients, 50) == [sorted(patients)]
    assert batch.plan_batches([], 3) == []
    with pytest.raises(ValueError, match="batch size must be >= 1"):
        batch.plan_batches(patients, 0)


def test_items_argument_is_the_json_run_batch_reads():
    text = batch.items_argument([("P1", ["--out", Path("x/P1"), "--seed", 3])])
    assert json.loads(text) == [{"key": "P1", "argv": ["--out", "x/P1", "--seed", "3"]}]
