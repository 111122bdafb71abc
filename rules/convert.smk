# Conversion runs in batches of patients (one process each, oncoflow.batch); convert_patient then
# publishes one patient's folder from the batch's staging folder, or fails with its own error.
# Declared once per results tree (RUNS: training, and a new cohort of `apply`).


for run in RUNS:

    rule:
        name:
            run.rule("convert_batch")
        input:
            sources=convert_batch_inputs(run),
            script=script_path("run_batch"),
            stage=script_path("convert_patient"),
        output:
            directory(run.path(dag.batch("convert"))),
        log:
            run.log("convert/batches/{study}/{batch}.log"),
        benchmark:
            run.benchmark("convert/batches/{study}/{batch}.tsv")
        # first the studies whose feature batches wait for it
        priority: convert_priority
        conda:
            "../envs/imaging.yaml"
        container:
            CONTAINERS["imaging"]
        params:
            batch_items=convert_batch_items(run),
            # the settings again as plain values: Snakemake's params trigger reruns on their change
            tilt=config["convert"]["tilt"],
            uneven_spacing=config["convert"]["uneven_spacing"],
        message:
            "Converting the images of batch {wildcards.batch} of {wildcards.study}"
        shell:
            "PYTHONPATH=$(dirname {input.script})/../src python {input.script}"
            " --script convert_patient --items {params.batch_items} --out {output}"
            " --label 'convert {wildcards.study} batch {wildcards.batch}' 2> {log}"

    rule:
        name:
            run.rule("convert_patient")
        input:
            staging=publish_input("convert", run),
            script=script_path("publish", "sh"),
        output:
            directory(run.path(dag.CONVERTED)),
        log:
            run.log("convert/{patient}.log"),
        localrule: True
        conda:
            "../envs/imaging.yaml"
        container:
            CONTAINERS["imaging"]
        # a few file links: it takes no core from the batch jobs (see oncoflow.batch)
        threads: 0
        message:
            "Converted images of patient {wildcards.patient}"
        shell:
            "sh {input.script} {input.staging} {wildcards.patient} {log}"
            " {wildcards.patient} {output} 2>> {log}"
