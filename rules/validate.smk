rule validate_cohort:
    input:
        cohort=cohort_inputs,
        script=script_path("validate_cohort"),
    output:
        "results/qc/{study}/cohort_report.json",
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
        reports=expand("results/qc/{study}/cohort_report.json", study=STUDIES),
        script=script_path("qc_summary"),
    output:
        report(
            "results/qc/cohort_report.json",
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
