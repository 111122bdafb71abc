# Apply trained models to a new cohort: snakemake apply --config apply_cohort=DIR
#
# The new cohort goes through the same validation, conversion and feature rules as a training
# cohort (reused below with their outputs under results/apply/<name>/), then through the FROZEN
# training artefacts: the final-fold ComBat estimates and the final models. Nothing is refit.


use rule validate_cohort as apply_validate with:
    input:
        cohort=apply_cohort_inputs,
        script=script_path("validate_cohort"),
    output:
        applied(dag.APPLY_QC),
    log:
        f"logs/{APPLY_LOGS}/{{study}}/validate.log",
    benchmark:
        f"logs/benchmarks/{APPLY_LOGS}/{{study}}/validate.tsv"
    params:
        cohort=apply_cohort,
        options=apply_validate_params,
    message:
        "Validating the new cohort {params.cohort} for {wildcards.study}"


rule apply_convert_patient:
    input:
        sources=apply_convert_inputs,
        script=script_path("convert_patient"),
    output:
        directory(applied(dag.CONVERTED)),
    log:
        f"logs/{APPLY_LOGS}/convert/{{patient}}.log",
    benchmark:
        f"logs/benchmarks/{APPLY_LOGS}/convert/{{patient}}.tsv"
    conda:
        "../envs/imaging.yaml"
    container:
        CONTAINERS["imaging"]
    params:
        cohort=apply_cohort,
        tilt=config["convert"]["tilt"],
        uneven_spacing=config["convert"]["uneven_spacing"],
    message:
        "Converting the images of new patient {wildcards.patient}"
    shell:
        "PYTHONPATH=$(dirname {input.script})/../src python {input.script}"
        " --cohort {params.cohort} --patient {wildcards.patient}"
        " --out {output} --tilt {params.tilt} --uneven-spacing {params.uneven_spacing} 2> {log}"


rule apply_radiomics:
    input:
        converted=applied(dag.CONVERTED),
        params=radiomics_params_file,
        script=script_path("extract_radiomics"),
    output:
        table=applied(dag.RADIOMICS),
        diagnostics=applied(dag.RADIOMICS_DIAGNOSTICS),
    log:
        f"logs/{APPLY_LOGS}/radiomics/{{study}}/{{patient}}/{{tp}}_{{stem}}_label{{label}}.log",
    benchmark:
        f"logs/benchmarks/{APPLY_LOGS}/radiomics/{{study}}/{{patient}}/{{tp}}_{{stem}}_label{{label}}.tsv"
    conda:
        "../envs/radiomics.yaml"
    container:
        CONTAINERS["radiomics"]
    message:
        "pyradiomics on new patient {wildcards.patient}: timepoint {wildcards.tp} {wildcards.stem} label {wildcards.label}"
    shell:
        "PYTHONPATH=$(dirname {input.script})/../src python {input.script}"
        " --image {input.converted}/{wildcards.tp}/{wildcards.stem}.nii.gz"
        " --mask {input.converted}/{wildcards.tp}/{wildcards.stem}_mask.nii.gz"
        " --label {wildcards.label} --params {input.params} --out {output.table}"
        " --patient {wildcards.patient} --timepoint {wildcards.tp} 2> {log}"


rule apply_pet_metrics:
    input:
        converted=applied(dag.CONVERTED),
        script=script_path("pet_metrics"),
    output:
        applied(dag.PET),
    log:
        f"logs/{APPLY_LOGS}/pet/{{study}}/{{patient}}/{{tp}}_{{stem}}_label{{label}}.log",
    benchmark:
        f"logs/benchmarks/{APPLY_LOGS}/pet/{{study}}/{{patient}}/{{tp}}_{{stem}}_label{{label}}.tsv"
    conda:
        "../envs/imaging.yaml"
    container:
        CONTAINERS["imaging"]
    params:
        threshold=pet_params,
    message:
        "PET metrics of new patient {wildcards.patient}: timepoint {wildcards.tp} {wildcards.stem} label {wildcards.label}"
    shell:
        "PYTHONPATH=$(dirname {input.script})/../src python {input.script}"
        " --pet {input.converted}/{wildcards.tp}/{wildcards.stem}.nii.gz"
        " --mask {input.converted}/{wildcards.tp}/{wildcards.stem}_mask.nii.gz"
        " --label {wildcards.label} {params.threshold} --out {output}"
        " --patient {wildcards.patient} --timepoint {wildcards.tp} 2> {log}"


rule apply_pathomics:
    input:
        qc=apply_qc,
        slide=apply_slide_path,
        script=script_path("extract_pathomics"),
    output:
        applied(dag.PATHOMICS),
    log:
        f"logs/{APPLY_LOGS}/pathomics/{{study}}/{{patient}}.log",
    benchmark:
        f"logs/benchmarks/{APPLY_LOGS}/pathomics/{{study}}/{{patient}}.tsv"
    conda:
        "../envs/pathology.yaml"
    container:
        CONTAINERS["pathology"]
    params:
        tile_um=config["pathomics"]["tile_um"],
        target_mpp=config["pathomics"]["target_mpp"],
        max_tiles=config["pathomics"]["max_tiles"],
        seed=config["seed"],
    message:
        "Pathomics of the slide of new patient {wildcards.patient}"
    shell:
        "PYTHONPATH=$(dirname {input.script})/../src python {input.script}"
        " --slide {input.slide} --out {output} --tile-um {params.tile_um}"
        " --target-mpp {params.target_mpp} --max-tiles {params.max_tiles} --seed {params.seed}"
        " --patient {wildcards.patient} 2> {log}"


use rule merge_features as apply_merge_features with:
    input:
        qc=apply_qc,
        tables=apply_feature_tables,
        script=script_path("merge_features"),
    output:
        applied(dag.FEATURES),
    log:
        f"logs/{APPLY_LOGS}/features/{{study}}/{{source}}.log",
    benchmark:
        f"logs/benchmarks/{APPLY_LOGS}/features/{{study}}/{{source}}.tsv"


rule apply_harmonize:
    input:
        features=applied(dag.FEATURES),
        model=dag.fill(dag.HARMONIZED_MODEL, study="{study}", source="{source}", fold="final"),
        script=script_path("apply_harmonize"),
    output:
        table=applied(dag.APPLY_HARMONIZED),
        stats=applied(dag.APPLY_HARMONIZED_STATS),
    log:
        f"logs/{APPLY_LOGS}/harmonize/{{study}}/{{source}}.log",
    benchmark:
        f"logs/benchmarks/{APPLY_LOGS}/harmonize/{{study}}/{{source}}.tsv"
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
        predictions=applied(dag.APPLY_PREDICTIONS),
        summary=applied(dag.APPLY_SUMMARY),
    log:
        f"logs/{APPLY_LOGS}/predict/{{study}}/{{variant}}.log",
    benchmark:
        f"logs/benchmarks/{APPLY_LOGS}/predict/{{study}}/{{variant}}.tsv"
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


use rule evaluate as apply_evaluate with:
    input:
        predictions=applied(dag.APPLY_PREDICTIONS),
        training=dag.PREDICTIONS,
        script=script_path("evaluate"),
    output:
        metrics=applied(dag.METRICS),
        card=applied(dag.MODEL_CARD),
        card_json=applied(dag.MODEL_CARD_JSON),
    log:
        f"logs/{APPLY_LOGS}/evaluate/{{study}}/{{variant}}.log",
    benchmark:
        f"logs/benchmarks/{APPLY_LOGS}/evaluate/{{study}}/{{variant}}.tsv"
    params:
        options=apply_evaluate_params,
        card=model_card_params,
    message:
        "Metrics of the frozen {wildcards.study} models ({wildcards.variant}) on the new cohort"


use rule report_study as apply_report_study with:
    input:
        unpack(apply_report_inputs),
        script=script_path("report_study"),
    output:
        section=applied(dag.REPORT_SECTION),
        figures=directory(applied(dag.REPORT_FIGURES)),
    log:
        f"logs/{APPLY_LOGS}/report/{{study}}.log",
    benchmark:
        f"logs/benchmarks/{APPLY_LOGS}/report/{{study}}.tsv"
    params:
        cohort=apply_cohort,
        converted=applied(dag.CONVERTED_ROOT),
        options=apply_report_params,
    message:
        "Report section of the new cohort ({wildcards.study})"


use rule report as apply_report with:
    input:
        sections=apply_sections,
        qc=apply_qc,
        script=script_path("make_report"),
    output:
        applied(dag.REPORT),
    log:
        f"logs/{APPLY_LOGS}/report/index.log",
    benchmark:
        f"logs/benchmarks/{APPLY_LOGS}/report/index.tsv"
    message:
        f"Report of the new cohort: {APPLY_ROOT}/report/index.html"
