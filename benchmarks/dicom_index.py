"""How long does indexing a DICOM tree take, the first time and again with the index cache?

Writes ``--series`` CT series of ``--slices`` small slices each (``--series x --slices`` files,
10,000 by default) with the demo's DICOM writer into a scratch folder, then indexes the tree with
:func:`oncoflow.importer.index_tree` three times: without a cache, filling the cache, and again
from the cache (what a second ``scripts/import_dicom.py`` run over an unchanged tree does).

Writes ``benchmarks/dicom_index.json``.

Usage:
    python benchmarks/dicom_index.py [--series 100] [--slices 100] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import SimpleITK as sitk

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from oncoflow.demo.dicomwrite import FakePHI, write_ct_series  # noqa: E402
from oncoflow.importer import index_tree  # noqa: E402


def write_tree(root: Path, series: int, slices: int) -> int:
    """``series`` CT series of ``slices`` 32 x 32 slices under ``root``; the number of files."""
    image = sitk.Image((32, 32, slices), sitk.sitkFloat32) - 1000.0
    for k in range(series):
        phi = FakePHI(patient_id=f"MRN{k // 4:05d}")
        write_ct_series(image, root / f"{k:03X}" / "A0", phi=phi, seed=k)
    return sum(len(files) for _, _, files in os.walk(root))


def main(argv: list[str] | None = None) -> int:
    """Write benchmarks/dicom_index.json; 0 on success."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=100)
    parser.add_argument("--slices", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "dicom_index.json")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="dicom_index_") as tmp:
        tree, cache = Path(tmp) / "tree", Path(tmp) / "index.json"
        start = time.perf_counter()
        files = write_tree(tree, args.series, args.slices)
        written = time.perf_counter() - start
        timings = {}
        for name, use in (("no_cache", None), ("first_run", cache), ("second_run", cache)):
            start = time.perf_counter()
            records = index_tree(tree, cache=use, workers=args.workers)
            timings[name] = round(time.perf_counter() - start, 2)
            assert len(records) == files
    result = {
        "command": " ".join(["python benchmarks/dicom_index.py", *(argv or [])]),
        "files": files,
        "workers": args.workers,
        "cpu_count": os.cpu_count(),
        "write_s": round(written, 1),
        "index_s": timings,
        "files_per_s_first_run": round(files / timings["first_run"]),
        "second_run_speedup": round(timings["first_run"] / timings["second_run"], 1),
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
