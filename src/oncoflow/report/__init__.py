"""The run report: self-contained HTML (inlined PNG figures), per-study sections, QC panels.

:func:`~oncoflow.report.html.study_section` builds a study's section from the validation report,
QC montages (:mod:`oncoflow.report.qc`), ComBat statistics and the evaluate stage's metrics;
:func:`~oncoflow.report.html.report_page` assembles the page. Figures: :mod:`.figures`; the
section's parts: :mod:`.markup` (HTML blocks), :mod:`.models` and :mod:`.sections`.
"""
