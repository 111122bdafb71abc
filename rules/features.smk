# Per-patient features in batches (pyradiomics, PET metrics, pathomics; see oncoflow.batch), each
# published per patient, then merged into one table per study and source.


rule radiomics_batch:
    input:
        converted=roi_batch_converted("radiomics"),
        params=radiomics_params_file,
        script=script_path("run_batch"),
        stage=script_path("extract_radiomics"),
    output:
        directory(dag.batch("radiomics")),
    log:
        "logs/features/radiomics/{study}/batches/{batch}.log",
    benchmark:
        "logs/benchmarks/features/radiomics/{study}/batches/{batch}.tsv"
    # the longest batches start first (oncoflow.batch)
    priority: 2
    conda:
        "../envs/radiomics.yaml"
    container:
        CONTAINERS["radiomics"]
    params:
        batch_items=radiomics_batch_items,
    message:
        "pyradiomics: batch {wildcards.batch} of {wildcards.study}"
    shell:
        "PYTHONPATH=$(dirname {input.script})/../src python {input.script}"
        " --script extract_radiomics --items {params.batch_items} --out {output}"
        " --label 'radiomics {wildcards.study} batch {wildcards.batch}' 2> {log}"


rule radiomics:
    input:
        staging=publish_input("radiomics"),
        script=script_path("publish", "sh"),
    output:
        table=dag.RADIOMICS,
        diagnostics=dag.RADIOMICS_DIAGNOSTICS,
    log:
        "logs/features/radiomics/{study}/{patient}/{tp}_{stem}_label{label}.log",
    localrule: True
    conda:
        "../envs/imaging.yaml"
    container:
        CONTAINERS["imaging"]
    # a few file links: it takes no core from the batch jobs (see oncoflow.batch)
    threads: 0
    params:
        key="{patient}/{tp}_{stem}_label{label}",
    message:
        "pyradiomics: {wildcards.patient} timepoint {wildcards.tp} {wildcards.stem} label {wildcards.label}"
    shell:
        "sh {input.script} {input.staging} {params.key} {log} {params.key}.csv {output.table}"
        " {params.key}.diagnostics.json {output.diagnostics} 2>> {log}"


rule pet_batch:
    input:
        converted=roi_batch_converted("pet"),
        script=script_path("run_batch"),
        stage=script_path("pet_metrics"),
    output:
        directory(dag.batch("pet")),
    log:
        "logs/features/pet/{study}/batches/{batch}.log",
    benchmark:
        "logs/benchmarks/features/pet/{study}/batches/{batch}.tsv"
    conda:
        "../envs/imaging.yaml"
    container:
        CONTAINERS["imaging"]
    params:
        batch_items=pet_batch_items,
        threshold=pet_params,
    message:
        "PET metrics: batch {wildcards.batch} of {wildcards.study}"
    shell:
        "PYTHONPATH=$(dirname {input.script})/../src python {input.script}"
        " --script pet_metrics --items {params.batch_items} --out {output}"
        " --label 'pet {wildcards.study} batch {wildcards.batch}' 2> {log}"


rule pet_metrics:
    input:
        staging=publish_input("pet"),
        script=script_path("publish", "sh"),
    output:
        dag.PET,
    log:
        "logs/features/pet/{study}/{patient}/{tp}_{stem}_label{label}.log",
    localrule: True
    conda:
        "../envs/imaging.yaml"
    container:
        CONTAINERS["imaging"]
    # a few file links: it takes no core from the batch jobs (see oncoflow.batch)
    threads: 0
    params:
        key="{patient}/{tp}_{stem}_label{label}",
    message:
        "PET metrics: {wildcards.patient} timepoint {wildcards.tp} {wildcards.stem} label {wildcards.label}"
    shell:
        "sh {input.script} {input.staging} {params.key} {log} {params.key}.csv {output} 2>> {log}"


rule pathomics_batch:
    input:
        qc=dag.QC_STUDY,
        slides=pathomics_batch_inputs,
        script=script_path("run_batch"),
        stage=script_path("extract_pathomics"),
    output:
        directory(dag.batch("pathomics")),
    log:
        "logs/features/pathomics/{study}/batches/{batch}.log",
    benchmark:
        "logs/benchmarks/features/pathomics/{study}/batches/{batch}.tsv"
    # the longest batches start first (oncoflow.batch)
    priority: 2
    conda:
        "../envs/pathology.yaml"
    container:
        CONTAINERS["pathology"]
    params:
        batch_items=pathomics_batch_items,
        tile_um=config["pathomics"]["tile_um"],
        target_mpp=config["pathomics"]["target_mpp"],
        max_tiles=config["pathomics"]["max_tiles"],
        seed=config["seed"],
    message:
        "Pathomics: batch {wildcards.batch} of {wildcards.study}"
    shell:
        "PYTHONPATH=$(dirname {input.script})/../src python {input.script}"
        " --script extract_pathomics --items {params.batch_items} --out {output}"
        " --label 'pathomics {wildcards.study} batch {wildcards.batch}' 2> {log}"


rule pathomics:
    input:
        staging=publish_input("pathomics"),
        script=script_path("publish", "sh"),
    output:
        dag.PATHOMICS,
    log:
        "logs/features/pathomics/{study}/{patient}.log",
    localrule: True
    conda:
        "../envs/imaging.yaml"
    container:
        CONTAINERS["imaging"]
    # a few file links: it takes no core from the batch jobs (see oncoflow.batch)
    threads: 0
    message:
        "Pathomics of the slide of {wildcards.patient}"
    shell:
        "sh {input.script} {input.staging} {wildcards.patient} {log}"
        " {wildcards.patient}.csv {output} 2>> {log}"


rule merge_features:
    input:
        qc=dag.QC_STUDY,
        tables=feature_tables,
        script=script_path("merge_features"),
    output:
        dag.FEATURES,
    log:
        "logs/features/{study}/{source}.log",
    benchmark:
        "logs/benchmarks/features/{study}/{source}.tsv"
    conda:
        "../envs/imaging.yaml"
    container:
        CONTAINERS["imaging"]
    message:
        "Merging the {wildcards.source} features of {wildcards.study}"
    shell:
        "PYTHONPATH=$(dirname {input.script})/../src python {input.script}"
        " --inputs {input.tables} --out {output} --prefix {wildcards.source} 2> {log}"
