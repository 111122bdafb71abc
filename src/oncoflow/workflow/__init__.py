"""What the Snakemake rules ask of the config and the cohort tables, as plain tested functions.

``rules/common.smk`` keeps only what needs Snakemake (wildcards, the parsed config, the two
results trees); the decisions behind its input and params functions live here:

- :mod:`oncoflow.workflow.tables`: which patients, ROIs, slides and image stems an
  ``images.csv`` holds, and which feature sources a study can run on it;
- :mod:`oncoflow.workflow.options`: the command-line options each script gets from the config.

Imported while Snakemake parses the workflow: standard library and pandas only
(``tests/unit/test_parse_imports.py``).
"""
