for run in RUNS:

    rule:
        name:
            run.rule("validate_cohort")
        input:
            cohort=cohort_inputs(run),
            script=script_path("validate_cohort"),
        output:
            run.path(dag.QC_STUDY),
        log:
            run.log("validate/{study}.log"),
        benchmark:
            run.benchmark("validate/{study}.tsv")
        conda:
            "../envs/imaging.yaml"
        container:
            CONTAINERS["imaging"]
        params:
            cohort=cohort_folder(run),
            options=validate_params(run),
        message:
            "Validating the cohort {params.cohort} for {wildcards.study}"
        shell:
            "PYTHONPATH=$(dirname {input.script})/../src python {input.script}"
            " --cohort {params.cohort} --out {output} {params.options} 2> {log}"

    rule:
        name:
            run.rule("qc_summary")
        input:
            reports=qc_reports(run),
            script=script_path("qc_summary"),
        output:
            report(
                run.path(dag.QC_ALL),
                caption="../report/cohort_report.rst",
                category="Cohort QC",
            ),
        log:
            run.log("validate/qc_summary.log"),
        benchmark:
            run.benchmark("validate/qc_summary.tsv")
        conda:
            "../envs/imaging.yaml"
        container:
            CONTAINERS["imaging"]
        shell:
            "PYTHONPATH=$(dirname {input.script})/../src python {input.script}"
            " --reports {input.reports} --out {output} 2> {log}"
