# Apply trained models to new cohorts: snakemake apply --config apply_cohort=DIR
#
# The new cohorts go through the rules every results tree shares (validation, conversion, lesion
# crops, features, evaluation, report: declared once per run in their own files, RUNS in
# common.smk), then through the FROZEN training artefacts below: the final-fold ComBat estimates
# and Cox models (survival), every fold's model.pt (deep), the trained nnU-Net folds
# (segmentation) and the DDPM (synthesis). Nothing is refit.


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
    wildcard_constraints:
        study="|".join(studies_of("survival")) or "NO_STUDY",
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


rule apply_deep:
    input:
        unpack(apply_deep_inputs),
        models=apply_fold_models,
        lesions=apply_lesions,
        qc=apply_qc,
        script=script_path("apply_deep"),
    output:
        predictions=APPLIED.path(dag.APPLY_PREDICTIONS),
        summary=APPLIED.path(dag.APPLY_SUMMARY),
    log:
        APPLIED.log("deep/{study}/{variant}.log"),
    benchmark:
        APPLIED.benchmark("deep/{study}/{variant}.tsv")
    wildcard_constraints:
        study="|".join(deep_studies()) or "NO_STUDY",
        variant="|".join([*DEEP_MODEL_NAMES, "permuted"]),
    conda:
        "../envs/torch.yaml"
    container:
        CONTAINERS["torch"]
    threads: TRAIN_THREADS
    resources:
        gpu=1,
    params:
        cohort=apply_cohort,
        options=apply_deep_params,
    message:
        "Frozen {wildcards.variant} fold models of {wildcards.study} on the new cohort"
    shell:
        "PYTHONPATH=$(dirname {input.script})/../src python {input.script}"
        " --models {input.models} --cohort {params.cohort} {params.options}"
        " --out {output.predictions} --summary {output.summary} 2> {log}"


rule apply_ddpm:
    input:
        model=dag.DDPM_MODEL,
        converted=apply_converted,
        qc=apply_qc,
        script=script_path("run_batch"),
        stage=script_path("sample_ddpm"),
    output:
        directory(APPLIED.path(dag.APPLY_DDPM_SAMPLES)),
    log:
        APPLIED.log("ddpm/{study}/sample.log"),
    benchmark:
        APPLIED.benchmark("ddpm/{study}/sample.tsv")
    wildcard_constraints:
        study="|".join(ddpm_studies()) or "NO_STUDY",
    conda:
        "../envs/torch.yaml"
    container:
        CONTAINERS["torch"]
    resources:
        gpu=1,
    params:
        batch_items=apply_ddpm_items,
    message:
        "Synthetic CTs of the new cohort's masks with the frozen diffusion model of {wildcards.study}"
    shell:
        "PYTHONPATH=$(dirname {input.script})/../src python {input.script}"
        " --script sample_ddpm --items {params.batch_items} --out {output}"
        " --label 'ddpm {wildcards.study} (apply)' 2> {log}"


rule apply_nnunet:
    input:
        checkpoints=apply_nnunet_checkpoints,
        converted=apply_converted,
        qc=apply_qc,
        script=script_path("nnunet_apply"),
    output:
        masks=directory(APPLIED.path(dag.APPLY_NNUNET)),
        predictions=APPLIED.path(dag.APPLY_PREDICTIONS.replace("{variant}", "nnunet")),
        dice=APPLIED.path(dag.APPLY_DICE.replace("{variant}", "nnunet")),
    log:
        APPLIED.log("nnunet/{study}/predict.log"),
    benchmark:
        APPLIED.benchmark("nnunet/{study}/predict.tsv")
    wildcard_constraints:
        study="|".join(nnunet_studies()) or "NO_STUDY",
    conda:
        "../envs/nnunet.yaml"
    container:
        CONTAINERS["nnunet"]
    resources:
        gpu=1,
    params:
        settings=nnunet_settings_json,
        results=dag.NNUNET_RESULTS,
        cohort=apply_cohort,
        converted=APPLIED.path(dag.CONVERTED_ROOT),
        device=config["device"],
    message:
        "Frozen nnU-Net folds of {wildcards.study}: masks and case classes of the new cohort"
    shell:
        "PYTHONPATH=$(dirname {input.script})/../src python {input.script}"
        " --settings {params.settings} --converted {params.converted} --cohort {params.cohort}"
        " --results {params.results} --out {output.masks} --predictions {output.predictions}"
        " --dice {output.dice} --device {params.device} 2> {log}"


rule apply_segment_unmasked:
    input:
        checkpoints=segmentor_checkpoints,
        converted=apply_converted,
        qc=apply_qc,
        script=script_path("nnunet_apply"),
    output:
        directory(APPLIED.path(dag.APPLY_SEGMENTED)),
    log:
        APPLIED.log("lesions/{study}/segmented.log"),
    benchmark:
        APPLIED.benchmark("lesions/{study}/segmented.tsv")
    conda:
        "../envs/nnunet.yaml"
    container:
        CONTAINERS["nnunet"]
    resources:
        gpu=1,
    params:
        settings=segmentor_settings_json,
        results=segmentor_results,
        cohort=apply_cohort,
        converted=APPLIED.path(dag.CONVERTED_ROOT),
        device=config["device"],
    message:
        "Masks of the new cohort's unmasked time points of {wildcards.study} (frozen nnU-Net)"
    shell:
        "PYTHONPATH=$(dirname {input.script})/../src python {input.script}"
        " --settings {params.settings} --converted {params.converted} --cohort {params.cohort}"
        " --results {params.results} --out {output} --without-masks"
        " --device {params.device} 2> {log}"


rule apply_evaluate_ddpm:
    input:
        model=dag.DDPM_MODEL,
        history=dag.DDPM_HISTORY,
        samples=APPLIED.path(dag.APPLY_DDPM_SAMPLES),
        script=script_path("evaluate_ddpm"),
    output:
        metrics=APPLIED.path(dag.APPLY_DDPM_METRICS),
        panel=APPLIED.path(dag.APPLY_DDPM_PANEL),
        loss=APPLIED.path(dag.APPLY_DDPM_LOSS),
    log:
        APPLIED.log("ddpm/{study}/evaluate.log"),
    benchmark:
        APPLIED.benchmark("ddpm/{study}/evaluate.tsv")
    wildcard_constraints:
        study="|".join(ddpm_studies()) or "NO_STUDY",
    conda:
        "../envs/torch.yaml"
    container:
        CONTAINERS["torch"]
    params:
        converted=APPLIED.path(dag.CONVERTED_ROOT),
    message:
        "Fidelity of the synthetic CTs of the new cohort of {wildcards.study}"
    shell:
        "PYTHONPATH=$(dirname {input.script})/../src python {input.script}"
        " --model {input.model} --converted {params.converted} --samples {input.samples}/*.nii.gz"
        " --history {input.history} --out {output.metrics}"
        " --panel {output.panel} --loss {output.loss} 2> {log}"
