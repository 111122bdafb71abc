# Metrics with bootstrap CIs, declared once per results tree (RUNS: a new cohort of `apply` is
# scored against the training run's predictions), and the paired comparisons of the training run.


for run in RUNS:

    rule:
        name:
            run.rule("evaluate")
        input:
            predictions=run_predictions(run),
            training=dag.PREDICTIONS if run.applied else [],
            segmentation=[] if run.applied else segmentation_tables,
            baselines=[] if run.applied else baseline_metrics,
            script=script_path("evaluate"),
        output:
            metrics=run.path(dag.METRICS),
            card=run.path(dag.MODEL_CARD),
            card_json=run.path(dag.MODEL_CARD_JSON),
        log:
            run.log("evaluate/{study}/{variant}.log"),
        benchmark:
            run.benchmark("evaluate/{study}/{variant}.tsv")
        conda:
            "../envs/survival.yaml"
        container:
            CONTAINERS["survival"]
        params:
            options=evaluate_params(run),
            card=model_card_params,
            segmentation=segmentation_option,
            baselines=baselines_option,
        message:
            "Metrics with bootstrap CIs of {wildcards.study} ({wildcards.variant})"
        shell:
            "PYTHONPATH=$(dirname {input.script})/../src python {input.script}"
            " --predictions {input.predictions} --out {output.metrics} --card {output.card}"
            " {params.options} {params.card} {params.segmentation} {params.baselines} 2> {log}"


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
