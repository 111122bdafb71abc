# Lesion crops in batches (see oncoflow.batch), each published per patient. Declared once per
# results tree (RUNS: training, and a new cohort of `apply`).


for run in RUNS:

    rule:
        name:
            run.rule("lesions_batch")
        input:
            converted=lesion_batch_converted(run),
            predicted=lesion_predicted_masks(run),
            fallback=lesion_fallback_masks(run),
            script=script_path("run_batch"),
            stage=script_path("extract_lesions"),
        output:
            directory(run.path(dag.batch("lesions"))),
        log:
            run.log("lesions/{study}/batches/{batch}.log"),
        benchmark:
            run.benchmark("lesions/{study}/batches/{batch}.tsv")
        conda:
            "../envs/imaging.yaml"
        container:
            CONTAINERS["imaging"]
        params:
            batch_items=lesion_batch_items(run),
            settings=lesion_settings_json,
            seed=config["seed"],
        message:
            "Lesion crops of batch {wildcards.batch} of {wildcards.study}"
        shell:
            "PYTHONPATH=$(dirname {input.script})/../src python {input.script}"
            " --script extract_lesions --items {params.batch_items} --out {output}"
            " --label 'lesions {wildcards.study} batch {wildcards.batch}' 2> {log}"

    rule:
        name:
            run.rule("extract_lesions")
        input:
            staging=publish_input("lesions", run),
            script=script_path("publish", "sh"),
        output:
            directory(run.path(dag.LESIONS)),
        log:
            run.log("lesions/{study}/{patient}.log"),
        localrule: True
        conda:
            "../envs/imaging.yaml"
        container:
            CONTAINERS["imaging"]
        # a few file links: it takes no core from the batch jobs (see oncoflow.batch)
        threads: 0
        message:
            "Lesion crops of {wildcards.patient} ({wildcards.study})"
        shell:
            "sh {input.script} {input.staging} {wildcards.patient} {log}"
            " {wildcards.patient} {output} 2>> {log}"


rule study_index:
    input:
        folders=index_folders,
        script=script_path("index_folders"),
    output:
        dag.STAGE_INDEX,
    log:
        "logs/index/{study}/{stage}.log",
    wildcard_constraints:
        stage="lesions|converted",
    # study bookkeeping opens the long training chains (nnU-Net, DDPM): before any training job
    priority: 10
    localrule: True
    conda:
        "../envs/imaging.yaml"
    container:
        CONTAINERS["imaging"]
    message:
        "Index of the {wildcards.stage} folders of {wildcards.study}"
    shell:
        "PYTHONPATH=$(dirname {input.script})/../src python {input.script}"
        " --folders {input.folders} --out {output} 2> {log}"
