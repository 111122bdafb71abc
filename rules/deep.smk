rule train_model:
    input:
        lesions=index_of("lesions"),
        features=study_feature_tables,
        converted=deep_converted,
        folds=dag.FOLDS,
        splits=dag.SPLITS,
        script=script_path("train_model"),
    output:
        model=dag.FOLD_MODEL,
        history=dag.FOLD_HISTORY,
        predictions=dag.FOLD_PREDICTIONS,
        provenance=dag.FOLD_PROVENANCE,
    log:
        "logs/train/{study}/{variant}/fold_{fold}.log",
    benchmark:
        "logs/benchmarks/train/{study}/{variant}/fold_{fold}.tsv"
    wildcard_constraints:
        fold=r"\d+",
        variant="|".join([*DEEP_MODEL_NAMES, "permuted"]),
    conda:
        "../envs/torch.yaml"
    container:
        CONTAINERS["torch"]
    threads: TRAIN_THREADS
    resources:
        gpu=1,
        mem_mb=8000,
        runtime=120,
    params:
        cohort=study_cohort,
        model=deep_model,
        recipe=deep_recipe,
        settings=deep_settings_json,
        options=deep_train_params,
        control=deep_control_params,
        resume=dag.RESUME,
        lesions=dag.LESIONS_ROOT,
    message:
        "Training {params.model} of {wildcards.study}, fold {wildcards.fold} ({wildcards.variant})"
    shell:
        "PYTHONPATH=$(dirname {input.script})/../src python {input.script}"
        " --model {params.model} --recipe {params.recipe} --cohort {params.cohort} --folds {input.folds}"
        " --splits {input.splits} --lesions {params.lesions} --fold {wildcards.fold}"
        " --settings {params.settings} {params.options} {params.control} --threads {threads}"
        " --out-dir $(dirname {output.model}) --resume-dir {params.resume} 2> {log}"


rule collect_model:
    input:
        folds=deep_fold_predictions,
        script=script_path("collect_model"),
    output:
        dag.PREDICTIONS,
    log:
        "logs/train/{study}/{variant}/collect.log",
    benchmark:
        "logs/benchmarks/train/{study}/{variant}/collect.tsv"
    wildcard_constraints:
        study="|".join(deep_studies()) or "NO_STUDY",
        variant="|".join([*DEEP_MODEL_NAMES, "permuted"]),
    conda:
        "../envs/torch.yaml"
    container:
        CONTAINERS["torch"]
    message:
        "Fold ensemble of {wildcards.study} ({wildcards.variant})"
    shell:
        "PYTHONPATH=$(dirname {input.script})/../src python {input.script}"
        " --folds {input.folds} --out {output} 2> {log}"
