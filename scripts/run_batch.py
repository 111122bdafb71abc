"""Run one stage script for a batch of patients in one process, into a staging folder.

Each item is ``{"key": ..., "argv": [...]}``: the arguments the stage's per-patient script
(``scripts/<name>.py``) takes, with its output paths inside ``--out``. A failing item writes
``<key>.error`` (its message names patient and file) and the batch goes on; ``publish.sh`` then
fails that patient's job alone. See ``oncoflow.batch``.

Example:
    python scripts/run_batch.py --script convert_patient --out results/.batches/convert/ns/0 \
        --items '[{"key": "NS001", "argv": ["--cohort", "c", "--patient", "NS001", "--out", \
        "results/.batches/convert/ns/0/NS001"]}]'
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from oncoflow import cli
from oncoflow.batch import BatchItem, run_batch, script_main
from oncoflow.errors import OncoflowError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--script", required=True, help="stage script name, e.g. convert_patient")
    parser.add_argument("--items", required=True, help="JSON list of {key, argv}")
    parser.add_argument("--out", type=Path, required=True, help="staging folder of the batch")
    parser.add_argument("--label", default=None, help="name of the batch in progress lines")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser


def _main(args: argparse.Namespace) -> None:
    try:
        items = [BatchItem.from_mapping(item) for item in json.loads(args.items)]
    except json.JSONDecodeError as exc:
        raise OncoflowError(f"--items is not valid JSON: {exc}") from exc
    main = script_main(Path(__file__).with_name(f"{args.script}.py"))
    label = args.label or f"{args.script} {args.out}"
    summary = run_batch(items, main, args.out, label=label, provenance=args.provenance.as_dict())
    cli.log.info("%d of %d items failed", summary["n_failed"], len(items))


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run(_main, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
