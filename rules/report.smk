# One HTML section per study and the report around them, declared once per results tree (RUNS:
# training, and a new cohort of `apply`).


for run in RUNS:

    rule:
        name:
            run.rule("report_study")
        input:
            unpack(report_study_inputs(run)),
            script=script_path("report_study"),
        output:
            section=run.path(dag.REPORT_SECTION),
            summary=run.path(dag.REPORT_SUMMARY),
            figures=report(
                directory(run.path(dag.REPORT_FIGURES)),
                patterns=["{name}.png"],
                caption="../report/figure.rst",
                category="{study}",
            ),
        log:
            run.log("report/{study}.log"),
        benchmark:
            run.benchmark("report/{study}.tsv")
        conda:
            "../envs/report.yaml"
        container:
            CONTAINERS["report"]
        params:
            cohort=cohort_folder(run),
            converted=run.path(dag.CONVERTED_ROOT),
            options=report_study_params(run),
        message:
            "Report section of {wildcards.study}"
        shell:
            "PYTHONPATH=$(dirname {input.script})/../src python {input.script}"
            " --study {wildcards.study} --cohort {params.cohort} --converted {params.converted}"
            " --cohort-report {input.qc} --out {output.section} --figures {output.figures}"
            " --summary {output.summary}"
            " {params.options} 2> {log}"

    rule:
        name:
            run.rule("report")
        input:
            sections=report_sections(run),
            summaries=report_sections(run, dag.REPORT_SUMMARY),
            qc=report_qc(run),
            script=script_path("make_report"),
        output:
            report(
                run.path(dag.REPORT),
                caption="../report/index.rst",
                category="Report",
            ),
        log:
            run.log("report/index.log"),
        benchmark:
            run.benchmark("report/index.tsv")
        conda:
            "../envs/report.yaml"
        container:
            CONTAINERS["report"]
        params:
            seed=config["seed"],
            scale=report_scale,
        message:
            f"Run report {run.path(dag.REPORT)}"
        shell:
            "PYTHONPATH=$(dirname {input.script})/../src python {input.script}"
            " --sections {input.sections} --summaries {input.summaries}"
            " --cohort-report {input.qc} --seed {params.seed} {params.scale}"
            " --out {output} 2> {log}"
