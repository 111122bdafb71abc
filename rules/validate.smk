rule validate_cohort:
    input:
        cohort_inputs,
    output:
        "results/qc/{study}/cohort_report.json",
    log:
        "logs/validate/{study}.log",
    benchmark:
        "benchmarks/validate/{study}.tsv"
    conda:
        f"{ENVS}/imaging.yaml"
    container:
        CONTAINERS["imaging"]
    params:
        cohort=study_cohort,
        options=validate_params,
    message:
        "Validating the cohort of {wildcards.study}"
    shell:
        "{PY}/validate_cohort.py --cohort {params.cohort} --out {output} {params.options} 2> {log}"


rule qc_summary:
    input:
        expand("results/qc/{study}/cohort_report.json", study=STUDIES),
    output:
        report(
            "results/qc/cohort_report.json",
            caption="../report/cohort_report.rst",
            category="Cohort QC",
        ),
    log:
        "logs/validate/qc_summary.log",
    benchmark:
        "benchmarks/validate/qc_summary.tsv"
    conda:
        f"{ENVS}/imaging.yaml"
    container:
        CONTAINERS["imaging"]
    shell:
        "{PY}/qc_summary.py --reports {input} --out {output} 2> {log}"
