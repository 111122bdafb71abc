# Tabular baselines (oncoflow.baselines): clinical variables, and clinical + mask sizes, fit in
# the study's folds like its models; evaluated, compared and reported beside them.


rule train_baseline:
    input:
        qc=dag.QC_STUDY,
        splits=dag.SPLITS,
        folds=dag.FOLDS,
        converted=index_of("converted"),
        script=script_path("train_baseline"),
    output:
        predictions=dag.PREDICTIONS,
        summary=dag.BASELINE_SUMMARY,
    log:
        "logs/train/{study}/{variant}.log",
    benchmark:
        "logs/benchmarks/train/{study}/{variant}.tsv"
    wildcard_constraints:
        variant="|".join(BASELINE_NAMES),
    conda:
        "../envs/survival.yaml"
    container:
        CONTAINERS["survival"]
    params:
        cohort=study_cohort,
        converted=dag.CONVERTED_ROOT,
        settings=baseline_settings_json,
        options=baseline_params,
    message:
        "Tabular baseline {wildcards.variant} of {wildcards.study}"
    shell:
        "PYTHONPATH=$(dirname {input.script})/../src python {input.script}"
        " --cohort {params.cohort} --splits {input.splits} --folds {input.folds}"
        " --converted {params.converted} --settings {params.settings} {params.options}"
        " --out {output.predictions} --summary {output.summary} 2> {log}"
