# Per-patient features in batches (pyradiomics, PET metrics, pathomics; see oncoflow.batch), each
# published per patient, then merged into one table per study and source. Declared once per
# results tree (RUNS: training, and a new cohort of `apply`).


for run in RUNS:

    rule:
        name:
            run.rule("radiomics_batch")
        input:
            converted=roi_batch_converted("radiomics", run),
            params=radiomics_params_file,
            script=script_path("run_batch"),
            stage=script_path("extract_radiomics"),
        output:
            directory(run.path(dag.batch("radiomics"))),
        log:
            run.log("features/radiomics/{study}/batches/{batch}.log"),
        benchmark:
            run.benchmark("features/radiomics/{study}/batches/{batch}.tsv")
        # the longest batches start first (oncoflow.batch)
        priority: 2
        conda:
            "../envs/radiomics.yaml"
        container:
            CONTAINERS["radiomics"]
        params:
            batch_items=radiomics_batch_items(run),
        message:
            "pyradiomics: batch {wildcards.batch} of {wildcards.study}"
        shell:
            "PYTHONPATH=$(dirname {input.script})/../src python {input.script}"
            " --script extract_radiomics --items {params.batch_items} --out {output}"
            " --label 'radiomics {wildcards.study} batch {wildcards.batch}' 2> {log}"

    rule:
        name:
            run.rule("radiomics")
        input:
            staging=publish_input("radiomics", run),
            script=script_path("publish", "sh"),
        output:
            table=run.path(dag.RADIOMICS),
            diagnostics=run.path(dag.RADIOMICS_DIAGNOSTICS),
        log:
            run.log("features/radiomics/{study}/{patient}/{tp}_{stem}_label{label}.log"),
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

    rule:
        name:
            run.rule("pet_batch")
        input:
            converted=roi_batch_converted("pet", run),
            script=script_path("run_batch"),
            stage=script_path("pet_metrics"),
        output:
            directory(run.path(dag.batch("pet"))),
        log:
            run.log("features/pet/{study}/batches/{batch}.log"),
        benchmark:
            run.benchmark("features/pet/{study}/batches/{batch}.tsv")
        conda:
            "../envs/imaging.yaml"
        container:
            CONTAINERS["imaging"]
        params:
            batch_items=pet_batch_items(run),
            options=pet_params,
        message:
            "PET metrics: batch {wildcards.batch} of {wildcards.study}"
        shell:
            "PYTHONPATH=$(dirname {input.script})/../src python {input.script}"
            " --script pet_metrics --items {params.batch_items} --out {output}"
            " --label 'pet {wildcards.study} batch {wildcards.batch}' 2> {log}"

    rule:
        name:
            run.rule("pet_metrics")
        input:
            staging=publish_input("pet", run),
            script=script_path("publish", "sh"),
        output:
            run.path(dag.PET),
        log:
            run.log("features/pet/{study}/{patient}/{tp}_{stem}_label{label}.log"),
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

    rule:
        name:
            run.rule("pathomics_batch")
        input:
            qc=run.path(dag.QC_STUDY),
            slides=pathomics_batch_inputs(run),
            script=script_path("run_batch"),
            stage=script_path("extract_pathomics"),
        output:
            directory(run.path(dag.batch("pathomics"))),
        log:
            run.log("features/pathomics/{study}/batches/{batch}.log"),
        benchmark:
            run.benchmark("features/pathomics/{study}/batches/{batch}.tsv")
        # the longest batches start first (oncoflow.batch)
        priority: 2
        conda:
            "../envs/pathology.yaml"
        container:
            CONTAINERS["pathology"]
        params:
            batch_items=pathomics_batch_items(run),
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

    rule:
        name:
            run.rule("pathomics")
        input:
            staging=publish_input("pathomics", run),
            script=script_path("publish", "sh"),
        output:
            run.path(dag.PATHOMICS),
        log:
            run.log("features/pathomics/{study}/{patient}.log"),
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

    rule:
        name:
            run.rule("merge_features")
        input:
            qc=run.path(dag.QC_STUDY),
            tables=feature_tables(run),
            script=script_path("merge_features"),
        output:
            run.path(dag.FEATURES),
        log:
            run.log("features/{study}/{source}.log"),
        benchmark:
            run.benchmark("features/{study}/{source}.tsv")
        conda:
            "../envs/imaging.yaml"
        container:
            CONTAINERS["imaging"]
        message:
            "Merging the {wildcards.source} features of {wildcards.study}"
        shell:
            "PYTHONPATH=$(dirname {input.script})/../src python {input.script}"
            " --inputs {input.tables} --out {output} --prefix {wildcards.source} 2> {log}"
