# Apply trained models to a new cohort: snakemake apply --config apply_cohort=DIR
#
# The new cohort goes through the rules every results tree shares (validation, conversion,
# features, evaluation, report: declared once per run in their own files, RUNS in common.smk),
# then through the FROZEN training artefacts below: the final-fold ComBat estimates and the final
# models. Nothing is refit.


rule apply_harmonize:
    input:
        features=APPLIED.path(dag.FEATURES),
        model=dag.fill(dag.HARMONIZED_MODEL, study="{study}", source="{source}", fold="final"),
        script=script_path("apply_harmonize"),
    output:
        table=APPLIED.path(dag.APPLY_HARMONIZED),
        stats=APPLIED.path(dag.APPLY_HARMONIZED_STATS),
    log:
        APPLIED.log("harmonize/{study}/{source}.log"),
    benchmark:
        APPLIED.benchmark("harmonize/{study}/{source}.tsv")
    conda:
        "../envs/survival.yaml"
    container:
        CONTAINERS["survival"]
    params:
        cohort=apply_cohort,
    message:
        "Frozen ComBat (training final fold) on the new cohort's {wildcards.source} features"
    shell:
        "PYTHONPATH=$(dirname {input.script})/../src python {input.script}"
        " --features {input.features} --cohort {params.cohort} --model {input.model}"
        " --out {output.table} --stats {output.stats} 2> {log}"


rule apply_predict:
    input:
        unpack(apply_model_features),
        models=dag.SURVIVAL_MODELS,
        qc=apply_qc,
        script=script_path("apply_net_survival"),
    output:
        predictions=APPLIED.path(dag.APPLY_PREDICTIONS),
        summary=APPLIED.path(dag.APPLY_SUMMARY),
    log:
        APPLIED.log("predict/{study}/{variant}.log"),
    benchmark:
        APPLIED.benchmark("predict/{study}/{variant}.tsv")
    conda:
        "../envs/survival.yaml"
    container:
        CONTAINERS["survival"]
    params:
        cohort=apply_cohort,
        features=apply_feature_arguments,
    message:
        "Frozen {wildcards.study} models ({wildcards.variant}) on the new cohort"
    shell:
        "PYTHONPATH=$(dirname {input.script})/../src python {input.script}"
        " --models {input.models} --features {params.features} --cohort {params.cohort}"
        " --out {output.predictions} --summary {output.summary} 2> {log}"
