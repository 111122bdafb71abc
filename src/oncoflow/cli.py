"""Shared plumbing for the thin command-line scripts in ``scripts/``."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

from oncoflow.errors import OncoflowError

log = logging.getLogger("oncoflow")


def setup_logging(verbose: bool = False) -> None:
    """Send oncoflow's log records to stderr with a short, greppable format."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def missing_decision(text: str) -> dict[str, Any]:
    """Argparse type of ``--missing`` / ``--card-missing``: a study's missing-input decision.

    Raises:
        argparse.ArgumentTypeError: Not JSON, or not of the decision's shape
            (:func:`oncoflow.workflow.missing.missing_record`).
    """
    from oncoflow.workflow.missing import missing_record

    try:
        return missing_record(json.loads(text))
    except ValueError as exc:  # json.JSONDecodeError is a ValueError
        msg = f"not a missing-input decision ({exc})"
        raise argparse.ArgumentTypeError(msg) from exc


def add_dicom_policy_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--tilt`` and ``--uneven-spacing``: the DICOM policies of config.yaml ``convert``.

    ``resample`` corrects the series onto an orthogonal, evenly spaced grid and records a warning;
    ``refuse`` makes such a series an error.
    """
    from oncoflow.convert.policy import POLICIES

    parser.add_argument(
        "--tilt",
        choices=POLICIES,
        default="resample",
        help="gantry-tilted series: resample or refuse (default: %(default)s)",
    )
    parser.add_argument(
        "--uneven-spacing",
        choices=POLICIES,
        default="resample",
        help="non-uniform slice spacing: resample or refuse (default: %(default)s)",
    )


def run(
    main: Callable[[argparse.Namespace], int | None],
    parser: argparse.ArgumentParser,
    argv: Sequence[str] | None,
) -> int:
    """Parse ``argv`` with ``parser`` and call ``main``; user errors become one line on stderr.

    Before ``main`` runs, ``args.provenance`` is set to the job's
    :class:`~oncoflow.provenance.Provenance` (settings hash and software versions), which is also
    the first line of the job's log; scripts embed it in their JSON outputs.

    Args:
        main: Function taking the parsed namespace; returns an exit code or ``None`` (= 0).
        parser: The script's argument parser.
        argv: Arguments without the program name; ``None`` means ``sys.argv[1:]``.

    Returns:
        The exit code: 0 on success, 1 when ``main`` raised :class:`OncoflowError`
        (its message is printed as ``error: <message>``), else what ``main`` returned.
    """
    from oncoflow.provenance import Provenance

    args = parser.parse_args(argv)
    setup_logging(getattr(args, "verbose", False))
    args.provenance = Provenance.from_arguments(parser, args)
    log.info(
        "provenance: config_hash %s, %s",
        args.provenance.config_hash,
        ", ".join(f"{k} {v}" for k, v in args.provenance.versions.items()),
    )
    try:
        code = main(args)
    except OncoflowError as exc:
        for line in str(exc).splitlines() or [type(exc).__name__]:
            print(f"error: {line}", file=sys.stderr)
        return 1
    return 0 if code is None else int(code)


def labelled_path(text: str) -> tuple[str, Path]:
    """Parse a ``LABEL=PATH`` argument (e.g. ``raw=results/.../predictions.csv``)."""
    label, sep, path = text.partition("=")
    if not sep or not label or not path:
        msg = f"expected LABEL=PATH, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return label, Path(path)


def labelled_dict(pairs: list[tuple[str, Path]], option: str) -> dict[str, Path]:
    """``LABEL=PATH`` pairs as a dict; a label given twice is an error naming ``option``."""
    mapping = dict(pairs)
    if len(mapping) != len(pairs):
        msg = f"{option}: a label is given twice"
        raise OncoflowError(msg)
    return mapping


@contextlib.contextmanager
def _writing(path: Path) -> Iterator[None]:
    """Create ``path``'s folder; turn an OSError while writing into a one-line OncoflowError."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        yield
    except OSError as exc:
        msg = f"{path}: cannot write ({exc.strerror or exc})"
        raise OncoflowError(msg) from exc


def write_csv(path: Path, table: pd.DataFrame) -> None:
    """Write a table output (no index); an unwritable path is an OncoflowError naming it."""
    with _writing(path):
        table.to_csv(path, index=False)


def write_json(
    path: Path, data: Mapping[str, Any], args: argparse.Namespace, *, sort_keys: bool = False
) -> None:
    """Write a JSON output with the job's provenance under ``"provenance"``.

    Args:
        path: Output file (parent folders are created).
        data: The payload; must not have a ``"provenance"`` key of its own.
        args: The parsed arguments; ``args.provenance`` (set by :func:`run`) is embedded.
        sort_keys: Sort the keys (the provenance block is then sorted too).

    Raises:
        OncoflowError: The file cannot be written (the message names it).
    """
    payload = dict(data)
    provenance = getattr(args, "provenance", None)
    if provenance is not None:
        payload["provenance"] = provenance.as_dict()
    with _writing(path):
        path.write_text(json.dumps(payload, indent=2, sort_keys=sort_keys, default=str) + "\n")


def write_text(path: Path, text: str) -> None:
    """Write a text output (Markdown, HTML); an unwritable path is an OncoflowError naming it."""
    with _writing(path):
        path.write_text(text)
