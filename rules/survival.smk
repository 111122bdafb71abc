rule train_net_survival:
    input:
        features=study_feature_tables,
        harmonized=variant_harmonized_tables,
        folds=dag.FOLDS,
        splits=dag.SPLITS,
        script=script_path("train_net_survival"),
    output:
        predictions=dag.PREDICTIONS,
        metrics=dag.TRAIN_METRICS,
        models=dag.SURVIVAL_MODELS,
    log:
        "logs/train/{study}/{variant}.log",
    benchmark:
        "logs/benchmarks/train/{study}/{variant}.tsv"
    wildcard_constraints:
        study="|".join(survival_studies()) or "NO_STUDY",
        variant="raw|combat|permuted",
    conda:
        "../envs/survival.yaml"
    container:
        CONTAINERS["survival"]
    threads: TRAIN_THREADS
    params:
        cohort=study_cohort,
        features=feature_arguments,
        options=train_survival_params,
    message:
        "Penalized Cox models of {wildcards.study} ({wildcards.variant} features)"
    shell:
        "PYTHONPATH=$(dirname {input.script})/../src python {input.script}"
        " --cohort {params.cohort} --features {params.features} --folds {input.folds}"
        " --splits {input.splits} --out {output.predictions} --summary {output.metrics}"
        " --models-out {output.models}"
        " --threads {threads} {params.options} 2> {log}"
