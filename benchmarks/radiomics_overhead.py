"""Overhead of oncoflow's radiomics extraction over the bare pyradiomics call on the same case.

Times ``oncoflow.features.radiomics.extract_radiomics`` (file reading, geometry and label checks,
pyradiomics, tidy table with settings hash) against
``RadiomicsFeatureExtractor(params).execute(image, mask, label=1)`` on one demo lesion, both
in this process, interleaved, several repeats; reports the wall times and their ratio
(goal: <= 1.1) and writes them to ``benchmarks/radiomics_overhead.json``.

The headline ``ratio`` is that of the fastest wall times (the usual estimator when other
processes share the machine: load only ever adds time); the median of the paired ratios (the
two calls back to back, in alternating order), the ratio of the fastest CPU times and of the
median wall and CPU times are reported too. ``own_steps_s`` times oncoflow's own steps alone
(reading both files, checks, tidy table), a noise-free upper bound of the overhead (the bare
call reads the files too): ``ratio_own_steps_bound = 1 + own_steps_s / min_bare_s``.

Usage:
    python benchmarks/radiomics_overhead.py [--repeats 5] [--patient NET001]
        [--params params/radiomics/ct_default_v1.yaml] [--cohort DIR] [--out FILE]

Without ``--cohort`` a 6-patient demo ``net_survival`` cohort is written to a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _time(fn: Callable[[], object]) -> tuple[float, float]:
    """Wall and process CPU seconds of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def _own_steps(image: Path, mask: Path, params: Path, *, repeats: int) -> float:
    """Fastest time of oncoflow's own steps around pyradiomics (read, checks, tidy table)."""
    from radiomics.featureextractor import RadiomicsFeatureExtractor

    from oncoflow.features import radiomics as ofr

    img = ofr.read_image(image, what="image")
    msk = ofr.read_image(mask, what="mask")
    raw = RadiomicsFeatureExtractor(str(params)).execute(img, msk, label=1)

    def steps() -> None:
        i = ofr.read_image(image, what="image")
        m = ofr.align_mask(i, ofr.read_image(mask, what="mask"), image_path=image, mask_path=mask)
        ofr._check_label(m, 1, mask_path=mask, image_path=image)
        ofr._tidy(raw, label=1, params=params)

    return min(_time(steps)[0] for _ in range(max(repeats, 5)))


def build_parser() -> argparse.ArgumentParser:
    """Command-line options of the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--patient", default="NET001")
    parser.add_argument(
        "--params", type=Path, default=REPO / "params" / "radiomics" / "ct_default_v1.yaml"
    )
    parser.add_argument("--cohort", type=Path, default=None, help="net_survival cohort folder")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "radiomics_overhead.json")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and write the JSON result."""
    args = build_parser().parse_args(argv)
    import radiomics
    from radiomics.featureextractor import RadiomicsFeatureExtractor

    from oncoflow.demo import write_cohort
    from oncoflow.features.radiomics import extract_radiomics, quiet_pyradiomics

    quiet_pyradiomics()
    with tempfile.TemporaryDirectory() as tmp:
        cohort = args.cohort
        if cohort is None:
            write_cohort(Path(tmp), "net_survival", seed=0, patients=6)
            cohort = Path(tmp) / "net_survival"
        folder = cohort / "images" / args.patient / "tp0"
        image, mask = folder / "CT.nii.gz", folder / "mask.nii.gz"

        def bare() -> object:
            return RadiomicsFeatureExtractor(str(args.params)).execute(
                str(image), str(mask), label=1
            )

        def ours() -> object:
            return extract_radiomics(image, mask, params=args.params, label=1)

        bare()  # warm-up: imports, caches
        ours()
        t_bare: list[tuple[float, float]] = []
        t_ours: list[tuple[float, float]] = []
        for i in range(args.repeats):
            pair = ((bare, t_bare), (ours, t_ours))
            for fn, times in pair if i % 2 == 0 else pair[::-1]:
                times.append(_time(fn))
        n_features = len(ours())
        steps = _own_steps(image, mask, args.params, repeats=args.repeats)

    wall_bare, cpu_bare = (list(x) for x in zip(*t_bare, strict=True))
    wall_ours, cpu_ours = (list(x) for x in zip(*t_ours, strict=True))
    med = statistics.median

    result = {
        "case": f"demo net_survival seed 0 {args.patient} lesion",
        "params": args.params.name,
        "n_features": n_features,
        "repeats": args.repeats,
        "bare_pyradiomics_wall_s": wall_bare,
        "oncoflow_wall_s": wall_ours,
        "bare_pyradiomics_cpu_s": cpu_bare,
        "oncoflow_cpu_s": cpu_ours,
        "min_bare_s": min(wall_bare),
        "min_oncoflow_s": min(wall_ours),
        "ratio": min(wall_ours) / min(wall_bare),
        "ratio_paired_median": med([o / b for o, b in zip(wall_ours, wall_bare, strict=True)]),
        "ratio_min_cpu": min(cpu_ours) / min(cpu_bare),
        "ratio_median_wall": med(wall_ours) / med(wall_bare),
        "ratio_median_cpu": med(cpu_ours) / med(cpu_bare),
        "own_steps_s": steps,
        "ratio_own_steps_bound": 1.0 + steps / min(wall_bare),
        "goal_ratio_max": 1.1,
        "pyradiomics_version": str(radiomics.__version__),
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"fastest: bare {result['min_bare_s']:.3f} s, oncoflow {result['min_oncoflow_s']:.3f} s; "
        f"ratio {result['ratio']:.3f} (goal <= 1.1; paired median "
        f"{result['ratio_paired_median']:.3f}, fastest CPU {result['ratio_min_cpu']:.3f}); "
        f"own steps {steps * 1000:.1f} ms, bound {result['ratio_own_steps_bound']:.3f}"
        f" -> {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
