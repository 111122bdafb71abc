"""Choose pancreas_multitask's scanner-offset augmentation on leave-one-site-out validation.

The external test site reads HU through another calibration than the training sites. Whether the
nnU-Net trainer should see random scanner offsets (``intensity_shift_hu``) is a design choice, so
it is made on validation patients only: on a development seed (never the README's, never a test
split), the training patients' folds leave one training site out (``folds: {by: site, k: 2}``);
fold 0 fits on site_b and validates on site_a, a transfer between two scanners whose
calibrations differ by 28 HU. The chain runs once per candidate offset, and only the validation
figures are collected: lesion / whole-pancreas Dice and the subtype's macro AUC and macro-F1 of
the nnU-Net head and of the two baselines, plus the head's macro AUC logged per epoch. The test
splits are predicted by the chain but never read.

Rule fixed before the runs: adopt the largest candidate whose validation subtype macro AUC is
higher than with no offset and whose lesion Dice is not lower by more than 0.02.

``--candidates`` compares scanner remedies instead, each a ``+``-joined list of ``shift<HU>``,
``blur<mm>``, ``noise<HU>`` (``intensity_shift_hu``, ``scanner_blur_mm``, ``scanner_noise_hu``),
``zscore`` (``plans.normalization: ZScoreNormalization``) or ``none`` (the reference, first), on
the fold given by ``--fold``: fold 1 fits on site_a and validates on site_b, whose scanner is
noisier, blurrier and offset by +28 HU (the direction of the external site, which is noisier and
blurrier than both training sites). Rule: among the candidates with a higher validation macro AUC
than the reference and a lesion Dice not lower by more than 0.02, the one with the highest
macro AUC is adopted (none: the reference). The baselines' figures are those of the same fold.
``--run`` trains only the listed candidates (the others must already be in the folder).
``--repeat`` trains the candidates again (``site_transfer_<seed>_fold<k>_repeat.json``): nnU-Net
training on a CPU is not deterministic, and the repeat measures the spread between two trainings of
one configuration.

Usage:
    python benchmarks/site_transfer.py --seed 31 --shifts 0,30 [--patients 120] [--cores 2]
    python benchmarks/site_transfer.py --seed 31 --shifts 0,30 --from DIR   # collect only
    python benchmarks/site_transfer.py --seed 31 --fold 1 --candidates none,shift30+blur1.75+noise18
    python benchmarks/site_transfer.py --seed 31 --fold 1 --candidates none,...,zscore --run zscore
    python benchmarks/site_transfer.py --seed 31 --fold 0 --candidates none --repeat
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
HERE = REPO / "benchmarks"
sys.path.insert(0, str(HERE))

from pancreas_multitask import (  # noqa: E402
    MODELS,
    OTHER_STUDIES,
    STUDY,
    _cell,
    _head_auc,
    _interval,
    run_workflow,
)
from readme_block import replace_block  # noqa: E402

METRICS = ("auc_macro", "f1_macro")
SETTINGS = {"shift": "intensity_shift_hu", "blur": "scanner_blur_mm", "noise": "scanner_noise_hu"}
"""Candidate spec prefix -> trainer setting (``--candidates``)."""


def candidate_settings(spec: str) -> dict[str, Any]:
    """Settings of a ``--candidates`` spec, e.g. ``shift30+noise18`` (``none``: {}).

    Trainer keys by name; ``zscore`` sets ``plans: {normalization: ZScoreNormalization}``.
    """
    if spec == "none":
        return {}
    out: dict[str, Any] = {}
    for part in spec.split("+"):
        if part == "zscore":
            out["plans"] = {"normalization": "ZScoreNormalization"}
            continue
        match = re.fullmatch(r"(shift|blur|noise)([0-9.]+)", part)
        if match is None:
            msg = f"candidate {spec!r}: {part!r} is not shift<HU>, blur<mm>, noise<HU> or zscore"
            raise ValueError(msg)
        out[SETTINGS[match.group(1)]] = float(match.group(2))
    return out


def overlay(
    seed: int, patients: int, shift: float, *, fold: int = 0, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Config merged over config.yaml + config/demo-full.yaml for one candidate.

    ``extra``: :func:`candidate_settings` (trainer keys, and ``plans`` for the plans block).
    """
    extra = dict(extra or {})
    nnunet: dict[str, Any] = {"folds": [fold]}
    if "plans" in extra:
        nnunet["plans"] = extra.pop("plans")
    nnunet["trainer"] = {"intensity_shift_hu": shift, **extra}
    return {
        "demo": {"seed": seed, "study_patients": {STUDY: patients}},
        "studies": {
            **{name: {"enabled": False} for name in OTHER_STUDIES},
            STUDY: {
                "folds": {"by": "site", "k": 2},
                "negative_control": False,
                "nnunet": nnunet,
            },
        },
    }


def run_candidate(workdir: Path, config: dict[str, Any], cores: int) -> float:
    """Run the study's chain for one candidate in ``workdir``; return the wall seconds."""
    return run_workflow(workdir, config, cores, "candidate.yaml")


def validation_figures(workdir: Path, fold: int = 0, *, same_fold: bool = False) -> dict[str, Any]:
    """Validation-only figures of one results tree (the test entries are never read).

    The nnU-Net is trained on ``fold`` only, so its pooled validation rows are that fold's; the
    baselines fit every fold, and with ``same_fold`` (``--candidates``) their entry is that fold's
    point value (``--shifts`` kept the pooled rows of both folds).
    """
    root = workdir / "results" / STUDY
    nnunet = json.loads((root / "evaluate/nnunet/metrics.json").read_text())
    dice = {
        region: _interval(splits["validation"]["dice"])
        for region, splits in nnunet["segmentation"]["regions"].items()
        if "validation" in splits
    }
    subtype = {}
    for model in MODELS:
        path = root / "evaluate" / model / "metrics.json"
        if not path.is_file():
            continue
        entry = next(iter(json.loads(path.read_text())["models"].values()))["subtype"]
        pooled = entry["validation"]["pooled"]
        if same_fold and model != "nnunet":
            one = entry["validation"]["per_fold"][str(fold)]
            subtype[model] = {m: {"value": round(float(one[m]), 4)} for m in METRICS}
            continue
        subtype[model] = {m: _interval(pooled[m]) for m in ("auc_macro", "f1_macro")}
    folds = json.loads((root / "folds.json").read_text())["folds"]
    return {
        "dice": dice,
        "subtype": subtype,
        "head_validation_auc_per_epoch": _head_auc(workdir),
        "n_fit": len(folds[str(fold)]["fit"]),
        "n_validation": len(folds[str(fold)]["apply"]),
    }


def choose(candidates: dict[str, dict[str, Any]], order: list[str] | None = None) -> str:
    """The rule in the module docstring; returns the chosen candidate's key.

    ``order``: the candidates in the order given (``--candidates``), the reference first (the
    qualified one with the highest AUC wins); ``None``: offsets ``--shifts``, reference ``"0"``
    (the largest qualified offset wins).
    """
    by_offset = order is None
    order = order or sorted(candidates, key=float)

    def auc(key: str) -> float:
        return candidates[key]["subtype"]["nnunet"]["auc_macro"]["value"]

    reference = order[0]
    qualified = [
        key
        for key in order[1:]
        if auc(key) > auc(reference)
        and candidates[key]["dice"]["lesion"]["value"]
        >= candidates[reference]["dice"]["lesion"]["value"] - 0.02
    ]
    if not qualified:
        return reference
    return qualified[-1] if by_offset else max(qualified, key=auc)


def table(result: dict[str, Any]) -> str:
    """The README block of a comparison, ``--shifts`` or ``--candidates`` (validation figures)."""
    seed = result["seed"]
    if "chosen_shift_hu" in result:  # --shifts: candidates are offsets on fold 0
        command = f"--seed {seed} --shifts {','.join(result['candidates'])}"
        source, extra = f"site_transfer_{seed}.json", ""
        label, chosen = "intensity_shift_hu", f"intensity_shift_hu: {result['chosen_shift_hu']:g}"
    else:
        fold = result["fold"]
        command = f"--seed {seed} --fold {fold} --candidates {','.join(result['candidates'])}"
        source = f"site_transfer_{seed}_fold{fold}.json"
        extra = "; a candidate added later trains alone with `--run <it>` into the same folder"
        label, chosen = "candidate (nnunet settings)", result["chosen"]
    lines = [
        f"Leave-one-site-out validation, development seed {seed} ({result['patients']} patients; "
        f"{result['folds']}), `python benchmarks/site_transfer.py {command}` "
        f"(`benchmarks/{source}`{extra}):",
        "",
        f"| {label} | whole pancreas Dice | lesion Dice | subtype macro AUC (refit head) "
        "| macro-F1 | baseline_lesion macro AUC"
        + ("" if "chosen_shift_hu" in result else " (same fold)")
        + " |",
        "|---|---|---|---|---|---|",
    ]
    for key, c in result["candidates"].items():
        subtype = c["subtype"]
        if "settings" in c:
            key = ", ".join(f"{k}: {_setting(v)}" for k, v in c["settings"].items()) or "none"
        lines.append(
            f"| {key} | {_cell(c['dice'].get('whole_pancreas'))}"
            f" | {_cell(c['dice'].get('lesion'))}"
            f" | {_cell(subtype['nnunet']['auc_macro'])} | {_cell(subtype['nnunet']['f1_macro'])}"
            f" | {_point(subtype.get('baseline_lesion', {}).get('auc_macro'))} |"
        )
    lines += ["", f"Chosen by the rule in the script's docstring: `{chosen}`."]
    return "\n".join(lines)


def _point(entry: dict[str, float] | None) -> str:
    """A figure with its CI when it has one (a baseline's single-fold value has none)."""
    if entry and "ci_low" not in entry:
        return f"{entry['value']:.3f}"
    return _cell(entry)


def _setting(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k} {v}" for k, v in value.items())
    return f"{value:g}"


def _run_all(root: Path, configs: dict[str, dict[str, Any]], cores: int) -> dict[str, float]:
    """Run every candidate side by side (``root/<prefix>_<key>``); wall seconds per key."""
    with ThreadPoolExecutor(max_workers=len(configs)) as pool:
        futures = {k: pool.submit(run_candidate, root / k, c, cores) for k, c in configs.items()}
        return {k: round(f.result(), 1) for k, f in futures.items()}


def augmentations(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """``--candidates``: compare scanner augmentations on ``--fold``'s validation patients."""
    specs = [s.strip() for s in args.candidates.split(",") if s.strip()]
    if specs[0] != "none":
        parser.error("--candidates must start with none (the reference)")
    settings = {spec: candidate_settings(spec) for spec in specs}
    runs = [r.strip() for r in args.run.split(",")] if args.run else specs
    if set(runs) - set(specs):
        parser.error("--run names a candidate that --candidates does not list")
    root = args.source or args.keep or Path(f"/tmp/site_transfer_{args.seed}_fold{args.fold}")
    walls: dict[str, float | None] = dict.fromkeys(specs)
    if args.source is None:
        configs = {
            spec: overlay(args.seed, args.patients, 0.0, fold=args.fold, extra=settings[spec])
            for spec in runs
        }
        walls.update(_run_all(root, configs, args.cores))
    candidates = {s: validation_figures(root / s, args.fold, same_fold=True) for s in specs}
    for spec in specs:
        candidates[spec].update(settings=settings[spec], wall_s=walls[spec])
    sites = ("site_a", "site_b")
    result = {
        "seed": args.seed,
        "patients": args.patients,
        "fold": args.fold,
        "folds": f"by site: fold {args.fold} fits on {sites[1 - args.fold]}, "
        f"validates on {sites[args.fold]}",
        "candidates": candidates,
        "chosen": choose(candidates, specs),
    }
    out = HERE / _fold_json(args.seed, args.fold, args.repeat)
    out.write_text(json.dumps(result, indent=1) + "\n")
    if args.repeat:
        replace_block(REPO / "README.md", "site_transfer_repeat", repeat_table(args.seed))
    else:
        replace_block(REPO / "README.md", f"site_transfer_fold{args.fold}", table(result))
    print(table(result))
    print(f"chosen: {result['chosen']} -> {out}")
    return 0


def _fold_json(seed: int, fold: int, repeat: bool = False) -> str:
    return f"site_transfer_{seed}_fold{fold}{'_repeat' if repeat else ''}.json"


def repeat_table(seed: int) -> str:
    """The README block: each repeated candidate's validation figures, first training and repeat.

    The same configuration on the same patients, trained twice: the spread between the two is
    what one training per candidate cannot tell apart from a candidate's effect.
    """
    lines = [
        f"The same configuration trained twice on the same patients (development seed {seed}; "
        f"`python benchmarks/site_transfer.py --seed {seed} --fold <k> --candidates none "
        f"--repeat`, `benchmarks/site_transfer_{seed}_fold<k>_repeat.json`; first = the tables "
        "above):",
        "",
        "| fold | candidate | lesion Dice, first / repeat | subtype macro AUC, first / repeat "
        "| macro-F1, first / repeat |",
        "|---|---|---|---|---|",
    ]
    for fold in (0, 1):
        path = HERE / _fold_json(seed, fold, repeat=True)
        if not path.exists():
            continue
        first = json.loads((HERE / _fold_json(seed, fold)).read_text())["candidates"]
        again = json.loads(path.read_text())
        for name, c in again["candidates"].items():
            one, two = first[name], c
            pairs = [(one["dice"].get("lesion"), two["dice"].get("lesion"))]
            pairs += [
                (one["subtype"]["nnunet"][m], two["subtype"]["nnunet"][m])
                for m in ("auc_macro", "f1_macro")
            ]
            cells = " | ".join(f"{a['value']:.3f} / {b['value']:.3f}" for a, b in pairs)
            lines.append(f"| {again['folds'].split(': ', 1)[1]} | {name} | {cells} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run (or collect) the candidates, apply the rule, write ``site_transfer_<seed>.json``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, required=True, help="development demo seed")
    parser.add_argument("--shifts", default="0,30", help="candidate offsets (HU), 0 first")
    parser.add_argument("--candidates", default=None, help="scanner remedies, none first")
    parser.add_argument("--run", default=None, help="train only these of --candidates")
    parser.add_argument("--fold", type=int, default=0, choices=(0, 1), help="site-out fold")
    parser.add_argument("--patients", type=int, default=120, help="pancreas_multitask patients")
    parser.add_argument("--cores", type=int, default=1, help="cores per candidate (run at once)")
    parser.add_argument("--keep", type=Path, default=None, help="run in this folder and keep it")
    parser.add_argument("--from", dest="source", type=Path, default=None, help="collect only")
    parser.add_argument("--render-only", action="store_true", help="README block from the JSON")
    parser.add_argument("--repeat", action="store_true", help="train the candidates again")
    args = parser.parse_args(argv)
    if args.seed == 20261123:
        parser.error("the README's seed is not a development seed")
    if args.candidates:
        if args.render_only and args.repeat:
            replace_block(REPO / "README.md", "site_transfer_repeat", repeat_table(args.seed))
            return 0
        if args.render_only:
            block = table(json.loads((HERE / _fold_json(args.seed, args.fold)).read_text()))
            replace_block(REPO / "README.md", f"site_transfer_fold{args.fold}", block)
            return 0
        return augmentations(args, parser)
    out = HERE / f"site_transfer_{args.seed}.json"
    if args.render_only:
        replace_block(REPO / "README.md", "site_transfer", table(json.loads(out.read_text())))
        return 0
    shifts = [s.strip() for s in args.shifts.split(",") if s.strip()]
    if shifts[0] != "0":
        parser.error("--shifts must start with 0 (the reference)")
    root = args.source or args.keep or Path(f"/tmp/site_transfer_{args.seed}")
    walls: dict[str, float | None] = dict.fromkeys(shifts)
    if args.source is None:
        configs = {f"shift_{s}": overlay(args.seed, args.patients, float(s)) for s in shifts}
        walls = {k[len("shift_") :]: w for k, w in _run_all(root, configs, args.cores).items()}
    candidates = {s: validation_figures(root / f"shift_{s}") for s in shifts}
    for s in shifts:
        candidates[s]["wall_s"] = walls[s]
    result = {
        "seed": args.seed,
        "patients": args.patients,
        "folds": "by site: fold 0 fits on site_b, validates on site_a",
        "candidates": candidates,
        "chosen_shift_hu": float(choose(candidates)),
    }
    out.write_text(json.dumps(result, indent=1) + "\n")
    replace_block(REPO / "README.md", "site_transfer", table(result))
    print(
        json.dumps(
            {s: {"dice": c["dice"], "subtype": c["subtype"]} for s, c in candidates.items()},
            indent=1,
        )
    )
    print(f"chosen intensity_shift_hu: {result['chosen_shift_hu']} -> {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
