rule validate_cohort:
    input:
        cohort=cohort_inputs,
        script=script_path("validate_cohort"),
    output:
        dag.QC_STUDY,
    log:
        "logs/validate/{study}.log",
    benchmark:
        "logs/benchmarks/validate/{study}.tsv"
    conda:
        "../envs/imaging.yaml"
    container:
        CONTAINERS["imaging"]
    params:
        cohort=study_cohort,
        options=validate_params,
    message:
        "Validating the cohort of {wildcards.study}"
    shell:
        "PYTHONPATH=$(dirname {input.script})/../src python {input.script}"
        " --cohort {params.cohort} --out {output} {params.options} 2> {log}"


rule qc_summary:
    input:
        reports=expand(dag.QC_STUDY, study=STUDIES),
        script=script_path("qc_summary"),
    output:
        report(
            dag.QC_ALL,
            caption="../report/cohort_report.rst",
            category="Cohort QC",
        ),
    log:
        "logs/validate/qc_summary.log",
    benchmark:
        "logs/benchmarks/validate/qc_summary.tsv"
    conda:
        "../envs/imaging.yaml"
    container:
        CONTAINERS["imaging"]
    shell:
        "PYTHONPATH=$(dirname {input.script})/../src python {input.script}"
        " --reports {input.reports} --out {output} 2> {log}"
