rule evaluate:
    input:
        predictions=dag.PREDICTIONS,
        segmentation=segmentation_tables,
        script=script_path("evaluate"),
    output:
        metrics=dag.METRICS,
        card=dag.MODEL_CARD,
        card_json=dag.MODEL_CARD_JSON,
    log:
        "logs/evaluate/{study}/{variant}.log",
    benchmark:
        "logs/benchmarks/evaluate/{study}/{variant}.tsv"
    conda:
        "../envs/survival.yaml"
    container:
        CONTAINERS["survival"]
    params:
        options=evaluate_params,
        card=model_card_params,
        segmentation=segmentation_option,
    message:
        "Metrics with bootstrap CIs of {wildcards.study} ({wildcards.variant})"
    shell:
        "PYTHONPATH=$(dirname {input.script})/../src python {input.script}"
        " --predictions {input.predictions} --out {output.metrics} --card {output.card}"
        " {params.options} {params.card} {params.segmentation} 2> {log}"


rule compare_models:
    input:
        predictions=compared_prediction_files,
        script=script_path("compare_models"),
    output:
        dag.COMPARISONS,
    log:
        "logs/evaluate/{study}/comparisons.log",
    benchmark:
        "logs/benchmarks/evaluate/{study}/comparisons.tsv"
    conda:
        "../envs/survival.yaml"
    container:
        CONTAINERS["survival"]
    params:
        labelled=labelled_predictions,
        options=bootstrap_params,
    message:
        "Paired model comparisons of {wildcards.study}"
    shell:
        "PYTHONPATH=$(dirname {input.script})/../src python {input.script}"
        " --predictions {params.labelled} --out {output} {params.options} 2> {log}"
