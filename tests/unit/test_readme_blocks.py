"""The README's generated blocks are what the committed benchmark JSON files render to.

Every figure block of the README is written by the benchmark that measured it, from a committed
JSON file (``--render-only`` / ``--render-readme`` re-render without measuring). Re-rendering
them all in a copy of the repository must leave the README byte for byte unchanged; a hand edit
of a block, or a JSON committed without its block, fails here.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

RENDERS: tuple[tuple[str, ...], ...] = (
    ("confirm.py", "--seed", "20261123", "--render-only"),
    ("confirm.py", "--seed", "5", "--render-only"),
    ("confirm.py", "--seed", "7", "--render-only"),
    ("gpu_suite.py", "--render-only"),
    ("run.py", "--render-readme"),
    ("pancreas_multitask.py", "--render-only"),
    ("site_transfer.py", "--seed", "31", "--render-only"),
    ("site_transfer.py", "--seed", "31", "--fold", "0", "--candidates", "x", "--render-only"),
    ("site_transfer.py", "--seed", "31", "--fold", "1", "--candidates", "x", "--render-only"),
    ("head_descriptor.py", "--seed", "31", "--render-only"),
    ("site_transfer.py", "--seed", "31", "--candidates", "x", "--repeat", "--render-only"),
    ("head_harmonization.py", "--seed", "31", "--render-only"),
    ("reference_calibration.py", "--seed", "31", "--render-only"),
    ("head_statistics.py", "--render-only"),
    ("head_inputs.py", "--render-only"),
    ("statistics_gap.py", "--render-only"),
    ("shape_fidelity.py", "--render-only"),
    ("cpu_precision.py", "--render-only"),
    ("calibration_starts.py", "--render-only"),
    ("head_reference.py", "--seed", "31", "--render-only"),
    ("pancreas_pixel_bound.py", "--render-only"),
    ("scanner_augmentation.py", "--seed", "31", "--fold", "1", "--render-only"),
    ("texture_blur.py", "--render-only"),
    ("head_site_statistics.py", "--seed", "31", "--render-only"),
    ("baseline_spread.py", "--study", "pancreas_progression", "--render-only"),
    ("baseline_spread.py", "--study", "liver_response", "--render-only"),
    ("liver_necrosis_readout.py", "--render-only"),
)


def test_rendering_every_block_from_the_committed_json_leaves_the_readme_unchanged(tmp_path):
    for name in ("README.md", "config.yaml"):
        shutil.copy(ROOT / name, tmp_path / name)
    for folder in ("benchmarks", "config"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    for script, *args in RENDERS:
        done = subprocess.run(
            [sys.executable, str(tmp_path / "benchmarks" / script), *args],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, f"{script} {' '.join(args)}: {done.stderr[-2000:]}"
    before = (ROOT / "README.md").read_text().splitlines()
    after = (tmp_path / "README.md").read_text().splitlines()
    changed = [i + 1 for i, (a, b) in enumerate(zip(before, after, strict=False)) if a != b]
    assert len(before) == len(after), "a render added or removed README lines"
    assert not changed, f"README lines {changed[:10]} differ from their committed JSON"
