"""Harmonisation of features across sites / scanners: ComBat, nested ComBat, site-effect statistics.

Every estimator is fit on training patients only (``fit``) and applied to any patients
(``transform``) with the fitted parameters; see :class:`ComBat` and :class:`NestedComBat`.
:func:`site_effect` gives per-feature Kruskal-Wallis / ANOVA statistics by batch for before/after
tables.
"""

from __future__ import annotations

from oncoflow.harmonize.combat import ComBat
from oncoflow.harmonize.nested import NestedComBat
from oncoflow.harmonize.stats import site_effect, site_effect_summary

__all__ = ["ComBat", "NestedComBat", "site_effect", "site_effect_summary"]
