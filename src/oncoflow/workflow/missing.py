"""Missing inputs by declared policy: what each patient lacks, and what the study does about it.

A study's models need certain images at certain time points and certain clinical values
(:class:`Requirements`, from its config blocks and its recipe). :func:`find_missing` lists every
gap of every patient; :func:`apply_policy` sorts the gaps by the study's ``missing`` policy
(``studies.<name>.missing``):

* ``modalities: refuse | drop_patient`` - a required image stem absent at a required time point;
* ``timepoints: refuse | drop_patient | use_available`` - a required time point absent (every
  image of it); ``use_available`` keeps the patient with the time points it has, where the
  recipe's models can read a shorter or gapped sequence (:attr:`Requirements.partial`);
* ``clinical: refuse | impute`` - an empty value in a clinical column the study uses; ``impute``
  leaves it to the models' encoders, which fill it with the median of the fold's training
  patients (:class:`~oncoflow.features.tabular.TabularEncoder`), and the model card says so.

``refuse`` (the default of all three) stops the workflow before any job runs with one message
listing every patient and what it lacks (:func:`refusal_message`). Nothing here reads an image:
the gaps come from ``images.csv`` and ``clinical.csv`` alone, so the check runs when Snakemake
parses the workflow.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import pandas as pd

from oncoflow.errors import ConfigError
from oncoflow.workflow.tables import stem

Kind = Literal["modalities", "timepoints", "clinical"]

POLICIES: dict[str, tuple[str, ...]] = {
    "modalities": ("refuse", "drop_patient"),
    "timepoints": ("refuse", "drop_patient", "use_available"),
    "clinical": ("refuse", "impute"),
}
"""The choices of each ``missing`` key; the first is the default."""


@dataclass(frozen=True)
class Requirements:
    """What a study's models read from every patient.

    Attributes:
        stems: Image stems (``<modality>_<series>``) needed at every required time point.
        modalities: Modalities of which at least one image is needed (``WSI`` for pathomics).
        timepoints: Time points every patient must have; ``None``: every time point from 0 to
            the patient's last, without a gap (a sequence model).
        clinical: Clinical columns the models read.
        partial: The models can read a patient with fewer time points (``use_available``).
    """

    stems: tuple[str, ...] = ()
    modalities: tuple[str, ...] = ()
    timepoints: tuple[int, ...] | None = (0,)
    clinical: tuple[str, ...] = ()
    partial: bool = False


@dataclass(frozen=True)
class Gap:
    """One missing input of one patient.

    Attributes:
        patient: Patient id.
        kind: ``modalities``, ``timepoints`` or ``clinical``.
        what: What is missing, for the message (``MR_T2 at time point 1``, ``time point 1``,
            ``clinical ca19_9``).
    """

    patient: str
    kind: Kind
    what: str


@dataclass
class Decision:
    """The gaps of a cohort sorted by the study's policy (:func:`apply_policy`).

    Attributes:
        policy: The study's policy (:func:`policy_of`).
        refused: Gaps whose policy is ``refuse`` (the workflow stops when any is left).
        dropped: Patient -> what it lacks, for the patients left out (``drop_patient``).
        imputed: Clinical column -> patients whose value the encoders fill (``impute``).
        partial: Patient -> the time points it lacks and is kept without (``use_available``).
    """

    policy: dict[str, str] = field(default_factory=dict)
    refused: list[Gap] = field(default_factory=list)
    dropped: dict[str, list[str]] = field(default_factory=dict)
    imputed: dict[str, list[str]] = field(default_factory=dict)
    partial: dict[str, list[str]] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """JSON-ready: the policy, dropped patients with reasons, imputed columns, partial ones."""
        return {
            "policy": self.policy,
            "dropped": self.dropped,
            "imputed": self.imputed,
            "partial": self.partial,
        }


def policy_of(study: Mapping[str, Any]) -> dict[str, str]:
    """The study's ``missing`` block with defaults (``refuse``) filled in.

    Raises:
        ConfigError: An unknown key or choice.
    """
    given = dict(study.get("missing") or {})
    unknown = sorted(set(given) - set(POLICIES))
    if unknown:
        msg = f"missing: unknown key(s) {', '.join(unknown)} (known: {', '.join(POLICIES)})"
        raise ConfigError(msg)
    policy = {key: str(given.get(key, choices[0])) for key, choices in POLICIES.items()}
    for key, value in policy.items():
        if value not in POLICIES[key]:
            msg = f"missing.{key}: {value!r} is not one of {', '.join(POLICIES[key])}"
            raise ConfigError(msg)
    return policy


def requirements(
    study: Mapping[str, Any], *, timepoints: tuple[int, ...] | None, partial: bool
) -> Requirements:
    """The inputs a study's config blocks make its models read.

    Stems: ``lesions.images``, ``radiomics.images``, ``pet.images`` and ``nnunet.channels``;
    ``WSI`` when ``pathomics`` is on; clinical: ``clinical``.

    Args:
        study: The study's config block.
        timepoints: The recipe's required time points (``None``: a gap-free sequence).
        partial: The recipe's models read a patient with fewer time points.
    """
    stems: list[str] = []
    for block, key in (("lesions", "images"), ("radiomics", "images"), ("pet", "images")):
        value = study.get(block)
        if isinstance(value, Mapping):
            stems += list(value.get(key) or [])
    stems += list((study.get("nnunet") or {}).get("channels") or [])
    return Requirements(
        stems=tuple(dict.fromkeys(stems)),
        modalities=("WSI",) if study.get("pathomics") else (),
        timepoints=timepoints,
        clinical=tuple(dict.fromkeys(study.get("clinical") or [])),
        partial=partial,
    )


def _empty(value: Any) -> bool:
    """An empty cell: ``None``, NaN / NA or a blank string."""
    if isinstance(value, str):
        return not value.strip()
    return bool(pd.isna(value))


def _needed_timepoints(present: Sequence[int], required: tuple[int, ...] | None) -> list[int]:
    if required is not None:
        return list(required)
    return list(range(max(present) + 1)) if present else [0]


def find_missing(
    images: pd.DataFrame, needs: Requirements, clinical: pd.DataFrame | None = None
) -> list[Gap]:
    """Every gap of every patient of ``images.csv`` (and of ``clinical.csv`` when given).

    A time point with no image at all is one ``timepoints`` gap; a time point that has images
    but lacks a required stem is one ``modalities`` gap per stem. A stem or modality that no
    patient has is the configuration's error (the feature-source and recipe checks name it),
    not every patient's gap, and is left to them.

    Args:
        images: ``images.csv`` rows (``patient_id``, ``timepoint``, ``modality``, ``series``).
        needs: What the models read.
        clinical: ``clinical.csv`` (``patient_id`` + columns), or ``None`` (not checked).
    """
    gaps: list[Gap] = []
    rows = images.assign(
        _stem=[
            stem(str(m), str(s)) for m, s in zip(images["modality"], images["series"], strict=True)
        ],
        _tp=pd.to_numeric(images["timepoint"], errors="coerce").fillna(0).astype(int),
    )
    stems = [s for s in needs.stems if (rows["_stem"] == s).any()]
    modalities = [m for m in needs.modalities if (rows["modality"] == m).any()]
    for patient, mine in rows.groupby(rows["patient_id"].astype(str), sort=True):
        gaps += [
            Gap(patient, "modalities", f"a {m} image")
            for m in modalities
            if not (mine["modality"] == m).any()
        ]
        imaging = mine[mine["modality"] != "WSI"]
        present = sorted(set(imaging["_tp"]))
        for tp in _needed_timepoints(present, needs.timepoints) if stems else []:
            have = set(imaging.loc[imaging["_tp"] == tp, "_stem"])
            if not have:
                gaps.append(Gap(patient, "timepoints", f"time point {tp}"))
                continue
            gaps += [
                Gap(patient, "modalities", f"{s} at time point {tp}")
                for s in stems
                if s not in have
            ]
    if clinical is not None and needs.clinical:
        table = clinical.assign(patient_id=clinical["patient_id"].astype(str))
        known = set(rows["patient_id"].astype(str))
        for column in needs.clinical:
            if column not in table:
                continue  # a missing column is the validation's error, not a patient's gap
            for patient, value in zip(table["patient_id"], table[column], strict=True):
                if patient in known and _empty(value):
                    gaps.append(Gap(patient, "clinical", f"clinical {column}"))
    return gaps


def apply_policy(gaps: Sequence[Gap], policy: Mapping[str, str], needs: Requirements) -> Decision:
    """Sort ``gaps`` by the policy (module docstring).

    A patient dropped for one gap is dropped whole: its other gaps are not refused.

    Raises:
        ConfigError: ``timepoints: use_available`` for models that need every time point.
    """
    if policy["timepoints"] == "use_available" and not needs.partial:
        msg = (
            "missing.timepoints: use_available, but this study's models need every time point "
            f"({list(needs.timepoints) if needs.timepoints is not None else 'a gap-free sequence'}"
            "); choose refuse or drop_patient"
        )
        raise ConfigError(msg)
    decision = Decision(policy=dict(policy))
    for gap in gaps:
        choice = policy[gap.kind]
        if choice == "drop_patient":
            decision.dropped.setdefault(gap.patient, []).append(gap.what)
    for gap in gaps:
        choice = policy[gap.kind]
        if gap.patient in decision.dropped or choice == "drop_patient":
            continue
        if choice == "refuse":
            decision.refused.append(gap)
        elif choice == "impute":
            column = gap.what.removeprefix("clinical ")
            decision.imputed.setdefault(column, []).append(gap.patient)
        else:
            decision.partial.setdefault(gap.patient, []).append(gap.what)
    return decision


def refusal_message(study: str, refused: Sequence[Gap], limit: int = 50) -> str:
    """One message listing every refused patient and what it lacks, and how to go on."""
    by_patient: dict[str, list[str]] = {}
    for gap in refused:
        by_patient.setdefault(gap.patient, []).append(gap.what)
    kinds = sorted({g.kind for g in refused})
    lines = [f"  {p}: {', '.join(what)}" for p, what in sorted(by_patient.items())]
    more = f"\n  ... and {len(lines) - limit} more patient(s)" if len(lines) > limit else ""
    options = "; ".join(f"{k}: {' | '.join(POLICIES[k])}" for k in kinds)
    return (
        f"study {study}: {len(by_patient)} patient(s) lack inputs its models need:\n"
        + "\n".join(lines[:limit])
        + more
        + f"\nAdd the missing inputs, or set studies.{study}.missing ({options})."
    )


def missing_record(decision: Mapping[str, Any]) -> dict[str, Any]:
    """Check and normalise a study's missing-input decision, as the workflow passes it to jobs.

    The decision is :meth:`Decision.summary`:
    ``{"policy": {"modalities": ..., "timepoints": ..., "clinical": ...}, "dropped": {patient:
    [what it lacks]}, "imputed": {clinical column: [patients]}, "partial": {patient: [time
    points it lacks]}}``. Policy keys left out are ``refuse``; the lists come back sorted by
    patient or column, each with its items in the given order.

    Args:
        decision: The decision (parsed JSON).

    Returns:
        ``{"policy", "dropped", "imputed", "partial"}`` with string keys and lists of strings.

    Raises:
        ValueError: ``decision`` is not of that shape.
    """
    if not isinstance(decision, Mapping):
        msg = f"missing: expected a JSON object, got {type(decision).__name__}"
        raise ValueError(msg)
    unknown = sorted(set(decision) - {"policy", "dropped", "imputed", "partial"})
    if unknown:
        msg = f"missing: unknown key(s) {', '.join(map(str, unknown))}"
        raise ValueError(msg)
    policy = decision.get("policy") or {}
    if not isinstance(policy, Mapping) or set(policy) - set(POLICIES):
        msg = f"missing.policy: expected an object with keys {', '.join(POLICIES)}"
        raise ValueError(msg)
    record: dict[str, Any] = {"policy": {k: str(policy.get(k, "refuse")) for k in tuple(POLICIES)}}
    for key in ("dropped", "imputed", "partial"):
        part = decision.get(key) or {}
        if not isinstance(part, Mapping) or not all(
            isinstance(v, list | tuple) for v in part.values()
        ):
            msg = f"missing.{key}: expected an object of lists"
            raise ValueError(msg)
        record[key] = {str(k): [str(v) for v in part[k]] for k in sorted(part, key=str)}
    return record
