# Patient splits (train / internal / external test) and the cross-validation folds of a study.


rule make_folds:
    input:
        qc=dag.QC_STUDY,
        script=script_path("make_folds"),
    output:
        splits=dag.SPLITS,
        folds=dag.FOLDS,
    log:
        "logs/folds/{study}.log",
    benchmark:
        "logs/benchmarks/folds/{study}.tsv"
    # study bookkeeping opens the long training chains (nnU-Net, DDPM): before any training job
    priority: 10
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
