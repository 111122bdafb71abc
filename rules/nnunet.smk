# nnU-Net v2 segmentation with a classification head (studies whose model is nnunet_multitask).
# Folders per study: results/<study>/nnunet/{nnUNet_raw,nnUNet_preprocessed,nnUNet_results,predict}.


rule nnunet_export:
    input:
        splits=dag.SPLITS,
        folds=dag.FOLDS,
        converted=index_of("converted"),
        script=script_path("nnunet_export"),
    output:
        raw=directory(dag.NNUNET_RAW),
        splits=dag.NNUNET_SPLITS,
    log:
        "logs/nnunet/{study}/export.log",
    benchmark:
        "logs/benchmarks/nnunet/{study}/export.tsv"
    priority: 10
    conda:
        "../envs/nnunet.yaml"
    container:
        CONTAINERS["nnunet"]
    params:
        settings=nnunet_dataset_json,
        cohort=study_cohort,
    message:
        "Exporting {wildcards.study} to nnU-Net raw format with our patient folds"
    shell:
        "PYTHONPATH=$(dirname {input.script})/../src python {input.script}"
        f" --settings {{params.settings}} --converted {dag.CONVERTED_ROOT} --cohort {{params.cohort}}"
        " --splits {input.splits} --folds {input.folds} --raw {output.raw}"
        " --splits-out {output.splits} 2> {log}"


rule nnunet_plan:
    input:
        raw=dag.NNUNET_RAW,
        splits=dag.NNUNET_SPLITS,
        script=script_path("nnunet_plan"),
    output:
        directory(dag.NNUNET_PREPROCESSED),
    log:
        "logs/nnunet/{study}/plan.log",
    benchmark:
        "logs/benchmarks/nnunet/{study}/plan.tsv"
    priority: 10
    conda:
        "../envs/nnunet.yaml"
    container:
        CONTAINERS["nnunet"]
    # no wider than the training jobs: on 2 cores a 2-thread job waits until no 1-thread job is
    # left to start (the plan waited for the whole training stage of the science-scale demo)
    threads: TRAIN_THREADS
    params:
        settings=nnunet_plan_json,
    message:
        "nnUNetv2_plan_and_preprocess of {wildcards.study} and the derived plans"
    shell:
        "PYTHONPATH=$(dirname {input.script})/../src python {input.script}"
        " --settings {params.settings} --raw {input.raw} --splits {input.splits}"
        " --out {output} 2> {log}"


rule nnunet_train:
    input:
        preprocessed=dag.NNUNET_PREPROCESSED,
        script=script_path("nnunet_train"),
    output:
        dag.NNUNET_CHECKPOINT,
    log:
        "logs/nnunet/{study}/{dataset}/{model}/train_fold_{fold}.log",
    benchmark:
        "logs/benchmarks/nnunet/{study}/{dataset}/{model}/train_fold_{fold}.tsv"
    wildcard_constraints:
        dataset=r"Dataset\d{3}_[^/]+",
        model=r"[^/]+__[^/]+__[^/]+",
    priority: 10
    conda:
        "../envs/nnunet.yaml"
    container:
        CONTAINERS["nnunet"]
    threads: TRAIN_THREADS
    resources:
        gpu=1,
    params:
        settings=nnunet_train_json,
        results=dag.NNUNET_RESULTS,
        device=config["device"],
    message:
        "nnUNetv2_train {wildcards.model} fold {wildcards.fold} of {wildcards.study}"
        " (a killed run resumes from checkpoint_latest.pth)"
    shell:
        "PYTHONPATH=$(dirname {input.script})/../src python {input.script}"
        " --settings {params.settings} --fold {wildcards.fold}"
        " --preprocessed {input.preprocessed} --results {params.results}"
        " --device {params.device} 2> {log}"


rule nnunet_refit_head:
    input:
        checkpoint=dag.NNUNET_CHECKPOINT,
        raw=dag.NNUNET_RAW,
        splits=dag.NNUNET_SPLITS,
        script=script_path("nnunet_refit_head"),
    output:
        dag.NNUNET_REFIT_HEAD,
    log:
        "logs/nnunet/{study}/{dataset}/{model}/refit_head_fold_{fold}.log",
    benchmark:
        "logs/benchmarks/nnunet/{study}/{dataset}/{model}/refit_head_fold_{fold}.tsv"
    wildcard_constraints:
        dataset=r"Dataset\d{3}_[^/]+",
        model=r"[^/]+__[^/]+__[^/]+",
    conda:
        "../envs/nnunet.yaml"
    container:
        CONTAINERS["nnunet"]
    threads: TRAIN_THREADS
    params:
        settings=nnunet_settings_json,
        results=nnunet_results_of,
        seed=config["seed"],
        device=config["device"],
    message:
        "Refit head of {wildcards.study} fold {wildcards.fold} on its frozen network's features"
    shell:
        "PYTHONPATH=$(dirname {input.script})/../src python {input.script}"
        " --settings {params.settings} --fold {wildcards.fold} --raw {input.raw}"
        " --results {params.results} --splits {input.splits} --seed {params.seed}"
        " --device {params.device} 2> {log}"


rule nnunet_predict:
    input:
        raw=dag.NNUNET_RAW,
        splits=dag.NNUNET_SPLITS,
        checkpoints=nnunet_predict_checkpoints,
        script=script_path("nnunet_predict"),
    output:
        directory(dag.NNUNET_PREDICTED),
    log:
        "logs/nnunet/{study}/predict_{subset}.log",
    benchmark:
        "logs/benchmarks/nnunet/{study}/predict_{subset}.tsv"
    conda:
        "../envs/nnunet.yaml"
    container:
        CONTAINERS["nnunet"]
    resources:
        gpu=1,
    params:
        settings=nnunet_settings_json,
        results=dag.NNUNET_RESULTS,
        device=config["device"],
    message:
        "nnU-Net masks and case classes of {wildcards.study} ({wildcards.subset})"
    shell:
        "PYTHONPATH=$(dirname {input.script})/../src python {input.script}"
        " --settings {params.settings} --subset {wildcards.subset} --raw {input.raw}"
        " --results {params.results} --splits {input.splits} --out {output}"
        " --device {params.device} 2> {log}"


rule nnunet_collect:
    input:
        raw=dag.NNUNET_RAW,
        predicted=nnunet_subsets,
        converted=index_of("converted"),
        script=script_path("nnunet_collect"),
    output:
        predictions=dag.fill(dag.PREDICTIONS, study="{study}", variant="nnunet"),
        dice=dag.fill(dag.DICE, study="{study}", variant="nnunet"),
    log:
        "logs/nnunet/{study}/collect.log",
    benchmark:
        "logs/benchmarks/nnunet/{study}/collect.tsv"
    conda:
        "../envs/nnunet.yaml"
    container:
        CONTAINERS["nnunet"]
    params:
        settings=nnunet_dataset_json,
    message:
        "Predictions and per-case Dice of {wildcards.study} (nnU-Net)"
    shell:
        "PYTHONPATH=$(dirname {input.script})/../src python {input.script}"
        f" --settings {{params.settings}} --raw {{input.raw}} --converted {dag.CONVERTED_ROOT}"
        " --predicted {input.predicted} --predictions {output.predictions}"
        " --dice {output.dice} 2> {log}"


rule nnunet_head_control:
    input:
        raw=dag.NNUNET_RAW,
        splits=dag.NNUNET_SPLITS,
        checkpoints=nnunet_all_checkpoints,
        predicted=nnunet_subsets,
        script=script_path("nnunet_head_control"),
    output:
        dag.fill(dag.PREDICTIONS, study="{study}", variant="permuted"),
    log:
        "logs/nnunet/{study}/head_control.log",
    benchmark:
        "logs/benchmarks/nnunet/{study}/head_control.tsv"
    wildcard_constraints:
        study="|".join(nnunet_studies()) or "NO_STUDY",
    conda:
        "../envs/nnunet.yaml"
    container:
        CONTAINERS["nnunet"]
    threads: TRAIN_THREADS
    params:
        settings=nnunet_settings_json,
        results=dag.NNUNET_RESULTS,
        permutations=lambda wc: STUDIES[wc.study].get("permutations", 5),
        seed=config["seed"],
        device=config["device"],
    message:
        "Permuted-label control of the {wildcards.study} head (new heads on frozen features)"
    shell:
        "PYTHONPATH=$(dirname {input.script})/../src python {input.script}"
        " --settings {params.settings} --raw {input.raw} --splits {input.splits}"
        " --results {params.results} --permutations {params.permutations} --seed {params.seed}"
        " --predicted {input.predicted} --predictions {output} --device {params.device} 2> {log}"
