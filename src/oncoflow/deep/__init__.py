"""Deep models of the imaging studies (pancreas_progression, liver_response, nsclc_mmdls)."""

from __future__ import annotations
