"""What Snakemake imports when it parses the workflow stays light (it is paid by every run).

``rules/common.smk`` imports the config schema, the recipes, the results paths, the batch planner
and the demo cohort plan. None of them may pull in torch, scikit-learn or scipy.stats (each
~1 s): a no-op rerun would pay for them.
"""

from __future__ import annotations

import json
import subprocess
import sys

PARSE_TIME_MODULES = (
    "oncoflow.schemas",
    "oncoflow.studies",
    "oncoflow.dag",
    "oncoflow.batch",
    "oncoflow.errors",
    "oncoflow.scheduler_fix",
    "oncoflow.demo",
    "oncoflow.demo.cohort",
    "oncoflow.workflow.options",
    "oncoflow.workflow.tables",
    "oncoflow.baselines.design",
)
HEAVY = ("torch", "sklearn", "scipy.stats", "lifelines", "SimpleITK", "pydicom")


def test_parsing_the_workflow_imports_nothing_heavy():
    code = (
        "import importlib, json, sys\n"
        f"for name in {PARSE_TIME_MODULES!r}: importlib.import_module(name)\n"
        "from oncoflow.demo import plan_cohort\n"
        "from oncoflow.studies import builtin_recipes\n"
        "builtin_recipes()\n"
        "for study in builtin_recipes(): plan_cohort(study, seed=1, patients=12)\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert json.loads(out.strip().splitlines()[-1]) == []
