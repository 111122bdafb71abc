rule harmonize:
    input:
        features=dag.FEATURES,
        folds=dag.FOLDS,
        script=script_path("harmonize"),
    output:
        table=dag.HARMONIZED,
        stats=dag.HARMONIZED_STATS,
        model=dag.HARMONIZED_MODEL,
    log:
        "logs/harmonize/{study}/{source}/{fold}.log",
    benchmark:
        "logs/benchmarks/harmonize/{study}/{source}/{fold}.tsv"
    conda:
        "../envs/survival.yaml"
    container:
        CONTAINERS["survival"]
    params:
        cohort=study_cohort,
        options=harmonize_params,
    message:
        "ComBat on {wildcards.source} of {wildcards.study}, fold {wildcards.fold} (fit on its training patients)"
    shell:
        "PYTHONPATH=$(dirname {input.script})/../src python {input.script}"
        " --features {input.features} --cohort {params.cohort} --folds {input.folds}"
        " --fold {wildcards.fold} --out {output.table} --stats {output.stats} --model {output.model}"
        " {params.options} 2> {log}"
