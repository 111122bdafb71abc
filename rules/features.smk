rule make_folds:
    input:
        qc="results/qc/{study}/cohort_report.json",
        script=script_path("make_folds"),
    output:
        splits="results/{study}/splits.csv",
        folds="results/{study}/folds.json",
    log:
        "logs/folds/{study}.log",
    benchmark:
        "benchmarks/folds/{study}.tsv"
    conda:
        "../envs/imaging.yaml"
    container:
        CONTAINERS["imaging"]
    params:
        cohort=study_cohort,
        options=folds_params,
    message:
        "Drawing patient splits and folds of {wildcards.study}"
    shell:
        "PYTHONPATH=$(dirname {input.script})/../src python {input.script}"
        " --cohort {params.cohort} --splits-out {output.splits} --folds-out {output.folds}"
        " {params.options} 2> {log}"


rule radiomics:
    input:
        converted="results/converted/{patient}",
        params=radiomics_params_file,
        script=script_path("extract_radiomics"),
    output:
        table="results/{study}/features/radiomics/{patient}/{tp}_{stem}_label{label}.csv",
        diagnostics="results/{study}/features/radiomics/{patient}/{tp}_{stem}_label{label}.diagnostics.json",
    log:
        "logs/features/radiomics/{study}/{patient}/{tp}_{stem}_label{label}.log",
    benchmark:
        "benchmarks/features/radiomics/{study}/{patient}/{tp}_{stem}_label{label}.tsv"
    conda:
        "../envs/radiomics.yaml"
    container:
        CONTAINERS["radiomics"]
    message:
        "pyradiomics: {wildcards.patient} timepoint {wildcards.tp} {wildcards.stem} label {wildcards.label}"
    shell:
        "PYTHONPATH=$(dirname {input.script})/../src python {input.script}"
        " --image {input.converted}/{wildcards.tp}/{wildcards.stem}.nii.gz"
        " --mask {input.converted}/{wildcards.tp}/{wildcards.stem}_mask.nii.gz"
        " --label {wildcards.label} --params {input.params} --out {output.table}"
        " --patient {wildcards.patient} --timepoint {wildcards.tp} 2> {log}"


rule pet_metrics:
    input:
        converted="results/converted/{patient}",
        script=script_path("pet_metrics"),
    output:
        "results/{study}/features/pet/{patient}/{tp}_{stem}_label{label}.csv",
    log:
        "logs/features/pet/{study}/{patient}/{tp}_{stem}_label{label}.log",
    benchmark:
        "benchmarks/features/pet/{study}/{patient}/{tp}_{stem}_label{label}.tsv"
    conda:
        "../envs/imaging.yaml"
    container:
        CONTAINERS["imaging"]
    params:
        threshold=pet_params,
    message:
        "PET metrics: {wildcards.patient} timepoint {wildcards.tp} {wildcards.stem} label {wildcards.label}"
    shell:
        "PYTHONPATH=$(dirname {input.script})/../src python {input.script}"
        " --pet {input.converted}/{wildcards.tp}/{wildcards.stem}.nii.gz"
        " --mask {input.converted}/{wildcards.tp}/{wildcards.stem}_mask.nii.gz"
        " --label {wildcards.label} {params.threshold} --out {output}"
        " --patient {wildcards.patient} --timepoint {wildcards.tp} 2> {log}"


rule pathomics:
    input:
        qc="results/qc/{study}/cohort_report.json",
        slide=slide_input,
        script=script_path("extract_pathomics"),
    output:
        "results/{study}/features/pathomics/{patient}.csv",
    log:
        "logs/features/pathomics/{study}/{patient}.log",
    benchmark:
        "benchmarks/features/pathomics/{study}/{patient}.tsv"
    conda:
        "../envs/pathology.yaml"
    container:
        CONTAINERS["pathology"]
    params:
        slide=slide_path,
        tile_um=config["pathomics"]["tile_um"],
        target_mpp=config["pathomics"]["target_mpp"],
        max_tiles=config["pathomics"]["max_tiles"],
        seed=config["seed"],
    message:
        "Pathomics of the slide of {wildcards.patient}"
    shell:
        "PYTHONPATH=$(dirname {input.script})/../src python {input.script}"
        " --slide {params.slide} --out {output} --tile-um {params.tile_um}"
        " --target-mpp {params.target_mpp} --max-tiles {params.max_tiles} --seed {params.seed}"
        " --patient {wildcards.patient} 2> {log}"


rule merge_features:
    input:
        qc="results/qc/{study}/cohort_report.json",
        tables=feature_tables,
        script=script_path("merge_features"),
    output:
        "results/{study}/features/{source}.csv",
    log:
        "logs/features/{study}/{source}.log",
    benchmark:
        "benchmarks/features/{study}/{source}.tsv"
    conda:
        "../envs/imaging.yaml"
    container:
        CONTAINERS["imaging"]
    message:
        "Merging the {wildcards.source} features of {wildcards.study}"
    shell:
        "PYTHONPATH=$(dirname {input.script})/../src python {input.script}"
        " --inputs {input.tables} --out {output} --prefix {wildcards.source} 2> {log}"
