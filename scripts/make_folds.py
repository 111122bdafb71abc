"""Write a study's patient splits and folds (folds.json) from its cohort.

Uses the cohort's splits.csv when present, else holds out the external sites and a stratified
internal test fraction. Folds are drawn over the train split only.

Example:
    python scripts/make_folds.py --cohort resources/demo/net_survival --stratify os_event \\
        --splits-out results/net_survival/splits.csv --folds-out results/net_survival/folds.json
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from oncoflow import cli
from oncoflow.cohort import load_cohort
from oncoflow.errors import CohortError
from oncoflow.formats import write_folds
from oncoflow.splits import make_folds, make_splits


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cohort", type=Path, required=True, help="cohort folder")
    parser.add_argument("--splits-out", type=Path, required=True, help="splits.csv to write")
    parser.add_argument("--folds-out", type=Path, required=True, help="folds.json to write")
    parser.add_argument("--stratify", help="outcomes.csv column to stratify on (e.g. os_event)")
    parser.add_argument("--external-sites", default="", help="comma-separated external sites")
    parser.add_argument("--repeats", type=int, default=5, help="fit/holdout draws (default 5)")
    parser.add_argument("--holdout", type=float, default=0.3, help="held-out fraction per draw")
    parser.add_argument("--k", type=int, help="k-fold cross-validation instead of repeated holdout")
    parser.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    parser.add_argument(
        "--by-site",
        action="store_true",
        help="leave-one-site-out folds: fold i validates on the i-th training site",
    )
    parser.add_argument(
        "--exclude",
        default="",
        help="comma-separated patients left out (dropped by the study's missing-input policy)",
    )
    return parser


def _main(args: argparse.Namespace) -> int:
    cohort = load_cohort(args.cohort)
    strata = None
    if args.stratify:
        if args.stratify not in cohort.outcomes.columns:
            msg = f"{args.cohort / 'outcomes.csv'}: no column {args.stratify!r} to stratify on"
            raise CohortError(msg)
        per_patient = cohort.outcomes.groupby("patient_id")[args.stratify].max()
        strata = per_patient.to_dict()
    sites = cohort.images.groupby("patient_id")["site"].agg(lambda s: sorted(set(s)))
    several = {p: s for p, s in sites.items() if len(s) > 1}
    if several:
        patient, names = next(iter(several.items()))
        msg = f"patient {patient}: images from several sites ({', '.join(names)})"
        raise CohortError(msg)
    patient_sites = {str(p): s[0] for p, s in sites.items()}
    if cohort.splits is not None:
        splits = cohort.splits[["patient_id", "split"]]
    else:
        external = [s for s in args.external_sites.split(",") if s]
        splits = make_splits(
            patient_sites,
            external_sites=external,
            strata=strata,
            seed=args.seed,
        )
    excluded = {p for p in args.exclude.split(",") if p}
    splits = splits[~splits["patient_id"].astype(str).isin(excluded)]
    folds = make_folds(
        splits,
        strata=strata,
        repeats=args.repeats,
        holdout=args.holdout,
        k=args.k,
        seed=args.seed,
        sites=patient_sites if args.by_site else None,
    )
    cli.write_csv(args.splits_out, splits.sort_values("patient_id"))
    write_folds(
        args.folds_out,
        folds,
        stratify=args.stratify,
        seed=args.seed,
        provenance=args.provenance.as_dict(),
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run(_main, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
