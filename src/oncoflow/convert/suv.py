"""Body-weight standardised uptake value (SUVbw) from PET DICOM headers.

For an image in activity concentration ``C`` (Bq/mL, ``Units = BQML``)::

    SUVbw = C * W / (D * 2^(-dt / T))

with ``W`` the patient weight in g (PatientWeight, kg, times 1000), ``D`` the injected dose in Bq
(RadionuclideTotalDose), ``T`` the half-life in s (RadionuclideHalfLife) and ``dt`` the time in s
from injection (RadiopharmaceuticalStartDateTime, else RadiopharmaceuticalStartTime) to the series
start (SeriesDate/SeriesTime). With time-of-day only, a series time earlier than the injection
time means the scan started after midnight (``dt += 24 h``). When the image is decay corrected to
the administration time (``DecayCorrection = ADMIN``) there is no decay factor (``2^0 = 1``);
``START`` (decay corrected to the series start) uses the factor above. The unit of SUVbw is g/mL.
"""

from __future__ import annotations

import datetime as _dt
import re
from dataclasses import asdict, dataclass
from typing import Any

from pydicom.dataset import Dataset

from oncoflow.convert._dicom_headers import header_float
from oncoflow.errors import ConversionError

__all__ = ["SuvParameters", "parse_dt", "parse_tm", "suv_parameters", "suv_problems"]

_TM = re.compile(r"^(\d{2})(\d{2})?(\d{2})?(\.\d{1,6})?$")
_DT = re.compile(r"^(\d{4})(\d{2})(\d{2})(\d{2})?(\d{2})?(\d{2})?(\.\d{1,6})?([+-]\d{4})?$")


def parse_tm(text: str) -> float:
    """Return the seconds after midnight of a DICOM TM value (``HHMMSS.FFFFFF``, also ``HH:MM:SS``).

    Raises:
        ValueError: Not a time.
    """
    value = str(text).strip().replace(":", "")
    match = _TM.match(value)
    if not match:
        raise ValueError(f"not a DICOM time: {text!r}")
    hours, minutes, seconds, frac = match.groups()
    total = int(hours) * 3600 + int(minutes or 0) * 60 + int(seconds or 0) + float(frac or 0)
    if total >= 86400 + 1:  # leap second at most
        raise ValueError(f"not a DICOM time: {text!r}")
    return float(total)


def parse_dt(text: str) -> _dt.datetime:
    """Parse a DICOM DT value ``YYYYMMDDHHMMSS.FFFFFF[&ZZXX]`` (offset ignored; local time).

    Raises:
        ValueError: Not a date-time.
    """
    value = str(text).strip()
    match = _DT.match(value)
    if not match:
        raise ValueError(f"not a DICOM date-time: {text!r}")
    year, month, day, hour, minute, second, frac, _ = match.groups()
    return _dt.datetime(
        int(year),
        int(month),
        int(day),
        int(hour or 0),
        int(minute or 0),
        int(second or 0),
        round(float(frac or 0) * 1e6),
    )


def _parse_da(text: str) -> _dt.date:
    value = str(text).strip()
    return _dt.datetime.strptime(value, "%Y%m%d").date()


@dataclass(frozen=True)
class SuvParameters:
    """Every factor of the SUVbw conversion (recorded in the sidecar).

    Attributes:
        weight_kg: PatientWeight (kg).
        injected_dose_bq: RadionuclideTotalDose (Bq).
        half_life_s: RadionuclideHalfLife (s).
        injection_time: Time of day of the injection (TM, no date).
        series_time: Time of day of the series start (TM, no date).
        time_source: Which tags gave ``delta_t_s``.
        delta_t_s: Seconds from injection to series start.
        crossed_midnight: Whether the series started on the day after the injection.
        decay_correction: DecayCorrection (START or ADMIN).
        decay_factor: ``2^(-dt / T)`` for START, 1 for ADMIN.
        factor: ``W[g] / (D * decay_factor)``; ``SUVbw = C[Bq/mL] * factor`` (mL/Bq * g = g/mL).
        warnings: Assumptions made (e.g. a missing DecayCorrection taken as START).
    """

    weight_kg: float
    injected_dose_bq: float
    half_life_s: float
    injection_time: str
    series_time: str
    time_source: str
    delta_t_s: float
    crossed_midnight: bool
    decay_correction: str
    decay_factor: float
    factor: float
    warnings: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """Return the parameters as a JSON-ready dict (with the formula)."""
        data = asdict(self)
        data["warnings"] = list(self.warnings)
        data["type"] = "SUVbw"
        data["units_in"] = "BQML"
        data["units_out"] = "g/mL"
        data["formula"] = "SUVbw = C[Bq/mL] * weight[g] / (dose[Bq] * 2^(-dt/T_half))"
        return data


def _check_units(header: Dataset, problems: list[str]) -> None:
    """Append a problem unless the pixel values are activity concentrations (``Units = BQML``)."""
    units = str(header.get("Units", "")).strip().upper()
    if not units:
        problems.append("missing tag Units (0054,1001): cannot tell the unit of the pixel values")
    elif units != "BQML":
        problems.append(
            f"Units (0054,1001) is {units}, only BQML (Bq/mL) can be converted to SUVbw"
        )


def _positive(ds: Dataset, keyword: str, tag: str, unit: str, problems: list[str]) -> float | None:
    """Return a numeric attribute needed for SUVbw, appending a problem when missing or <= 0.

    Args:
        ds: The header or radiopharmaceutical item holding the attribute.
        keyword: Its keyword, e.g. ``"PatientWeight"``.
        tag: Its tag for messages, e.g. ``"(0010,1030)"``.
        unit: Its unit for messages (``"kg"``, ``"Bq"``, ``"s"``).
        problems: Where the problem is appended.

    Returns:
        The value (also when not positive), ``None`` when absent or not a number.
    """
    value = header_float(ds, keyword)
    if value is None:
        problems.append(f"missing tag {keyword} {tag}, needed for SUVbw")
    elif value <= 0:
        problems.append(f"{keyword} {tag} is {value:g} {unit}, must be > 0")
    return value


def _decay_correction(header: Dataset, warnings: list[str], problems: list[str]) -> str:
    """Return DecayCorrection (a missing one is taken as START, with a warning)."""
    decay = str(header.get("DecayCorrection", "")).strip().upper()
    if not decay:
        decay = "START"
        warnings.append("DecayCorrection (0054,1102) missing: assumed START")
    elif decay not in {"START", "ADMIN"}:
        problems.append(
            f"DecayCorrection (0054,1102) is {decay}; only START and ADMIN are supported"
        )
    return decay


def _series_start(
    header: Dataset, warnings: list[str], problems: list[str]
) -> tuple[str, str, float] | None:
    """Return the series start ``(TM text, source keyword, seconds after midnight)``.

    SeriesTime, else AcquisitionTime (with a warning); ``None`` (and a problem) when neither is a
    valid time.
    """
    series_tm = str(header.get("SeriesTime", "")).strip()
    series_source = "SeriesTime"
    if not series_tm:
        series_tm = str(header.get("AcquisitionTime", "")).strip()
        series_source = "AcquisitionTime"
        if series_tm:
            warnings.append("SeriesTime (0008,0031) missing: used AcquisitionTime")
    if not series_tm:
        problems.append("missing tag SeriesTime (0008,0031), needed for the decay correction")
        return None
    try:
        series_s = parse_tm(series_tm)
    except ValueError:
        problems.append(f"{series_source} is not a valid time: {series_tm!r}")
        return None
    return series_tm, series_source, series_s


def _delta_from_datetime(
    start_dt_text: str, series_date: str, series_s: float, series_source: str, problems: list[str]
) -> dict[str, Any] | None:
    """Injection-to-series time from RadiopharmaceuticalStartDateTime and the series date.

    Returns:
        ``delta``, ``crossed``, ``injection_time`` and ``time_source`` values; ``None`` (and a
        problem) when the date-time is invalid.
    """
    try:
        start = parse_dt(start_dt_text)
        series_start = _dt.datetime.combine(_parse_da(series_date), _dt.time()) + (
            _dt.timedelta(seconds=series_s)
        )
    except ValueError:
        problems.append(
            f"RadiopharmaceuticalStartDateTime (0018,1078) is not a valid date-time: "
            f"{start_dt_text!r}"
        )
        return None
    delta = (series_start - start).total_seconds()
    if delta < 0:
        problems.append(
            "the series starts before the injection "
            "(RadiopharmaceuticalStartDateTime after SeriesDate/SeriesTime)"
        )
    return {
        "delta": delta,
        "crossed": series_start.date() != start.date(),
        "injection_time": start.strftime("%H%M%S.%f"),
        "time_source": f"RadiopharmaceuticalStartDateTime to SeriesDate/{series_source}",
    }


def _delta_from_time(
    start_tm: str,
    series_tm: str,
    series_s: float,
    series_source: str,
    warnings: list[str],
    problems: list[str],
) -> dict[str, Any] | None:
    """Injection-to-series time from times of day only (a negative one means after midnight).

    Returns:
        ``delta``, ``crossed``, ``injection_time`` and ``time_source`` values; ``None`` (and a
        problem) when RadiopharmaceuticalStartTime is missing or invalid.
    """
    if not start_tm:
        problems.append(
            "missing tag RadiopharmaceuticalStartTime (0018,1072), needed for the decay correction"
        )
        return None
    try:
        start_s = parse_tm(start_tm)
    except ValueError:
        problems.append(f"RadiopharmaceuticalStartTime is not a valid time: {start_tm!r}")
        return None
    delta = series_s - start_s
    crossed = delta < 0
    if crossed:
        delta += 86400.0
        warnings.append(
            f"{series_source} {series_tm} is earlier in the day than RadiopharmaceuticalStartTime "
            f"{start_tm}: the scan started after midnight, dt = {delta:.0f} s"
        )
    return {
        "delta": delta,
        "crossed": crossed,
        "injection_time": start_tm,
        "time_source": f"RadiopharmaceuticalStartTime to {series_source}",
    }


def _collect(header: Dataset) -> tuple[dict[str, Any], list[str]]:
    """Gather the SUV inputs from a PET header; returns (values, problems without location)."""
    problems: list[str] = []
    warnings: list[str] = []
    values: dict[str, Any] = {"warnings": warnings}
    _check_units(header, problems)
    values["weight_kg"] = _positive(header, "PatientWeight", "(0010,1030)", "kg", problems)
    seq = header.get("RadiopharmaceuticalInformationSequence")
    item = seq[0] if seq else None
    if item is None:
        problems.append(
            "missing tag RadiopharmaceuticalInformationSequence (0054,0016): no injected dose, "
            "half-life or injection time"
        )
        return values, problems
    values["dose"] = _positive(item, "RadionuclideTotalDose", "(0018,1074)", "Bq", problems)
    values["half_life"] = _positive(item, "RadionuclideHalfLife", "(0018,1075)", "s", problems)
    values["decay"] = _decay_correction(header, warnings, problems)
    start = _series_start(header, warnings, problems)
    if start is None:
        return values, problems
    series_tm, series_source, series_s = start
    values["series_time"] = series_tm
    start_dt_text = str(item.get("RadiopharmaceuticalStartDateTime", "")).strip()
    start_tm = str(item.get("RadiopharmaceuticalStartTime", "")).strip()
    series_date = str(header.get("SeriesDate", "") or header.get("StudyDate", "")).strip()
    if start_dt_text and series_date:
        timing = _delta_from_datetime(start_dt_text, series_date, series_s, series_source, problems)
    else:
        timing = _delta_from_time(start_tm, series_tm, series_s, series_source, warnings, problems)
    if timing is not None:
        values.update(timing)
    return values, problems


def suv_problems(header: Dataset, *, where: str) -> list[str]:
    """List what prevents an SUVbw conversion of a PET series (empty when it converts).

    Args:
        header: Header of one slice of the series.
        where: Location prefix for the messages (folder or file).

    Returns:
        One message per problem, each starting with ``where``.
    """
    _, problems = _collect(header)
    return [f"{where}: {p}" for p in problems]


def suv_parameters(header: Dataset, *, where: str) -> SuvParameters:
    """Compute the SUVbw factors from the header of a PET slice.

    Args:
        header: Header of one slice (the radiopharmaceutical tags are per series).
        where: Location for error messages (folder or file).

    Returns:
        The parameters; ``SUVbw = C * parameters.factor``.

    Raises:
        ConversionError: Units not BQML, or weight / dose / half-life / injection time /
            series time missing or invalid (the first problem, naming the tag).
    """
    values, problems = _collect(header)
    if problems:
        raise ConversionError(f"{where}: {problems[0]}")
    weight_g = values["weight_kg"] * 1000.0
    decay = values["decay"]
    decay_factor = 1.0 if decay == "ADMIN" else 2.0 ** (-values["delta"] / values["half_life"])
    factor = weight_g / (values["dose"] * decay_factor)
    return SuvParameters(
        weight_kg=values["weight_kg"],
        injected_dose_bq=values["dose"],
        half_life_s=values["half_life"],
        injection_time=values["injection_time"],
        series_time=values["series_time"],
        time_source=values["time_source"],
        delta_t_s=values["delta"],
        crossed_midnight=bool(values["crossed"]),
        decay_correction=decay,
        decay_factor=decay_factor,
        factor=factor,
        warnings=tuple(values["warnings"]),
    )
