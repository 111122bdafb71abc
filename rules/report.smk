rule report_study:
    input:
        unpack(report_study_inputs),
        script=script_path("report_study"),
    output:
        section=dag.REPORT_SECTION,
        figures=report(
            directory(dag.REPORT_FIGURES),
            patterns=["{name}.png"],
            caption="../report/figure.rst",
            category="{study}",
        ),
    log:
        "logs/report/{study}.log",
    benchmark:
        "logs/benchmarks/report/{study}.tsv"
    conda:
        "../envs/report.yaml"
    container:
        CONTAINERS["report"]
    params:
        cohort=study_cohort,
        converted=dag.CONVERTED_ROOT,
        options=report_study_params,
    message:
        "Report section of {wildcards.study}"
    shell:
        "PYTHONPATH=$(dirname {input.script})/../src python {input.script}"
        " --study {wildcards.study} --cohort {params.cohort} --converted {params.converted}"
        " --cohort-report {input.qc} --out {output.section} --figures {output.figures}"
        " {params.options} 2> {log}"


rule report:
    input:
        sections=expand(dag.REPORT_SECTION, study=STUDIES),
        qc=dag.QC_ALL,
        script=script_path("make_report"),
    output:
        report(
            dag.REPORT,
            caption="../report/index.rst",
            category="Report",
        ),
    log:
        "logs/report/index.log",
    benchmark:
        "logs/benchmarks/report/index.tsv"
    conda:
        "../envs/report.yaml"
    container:
        CONTAINERS["report"]
    params:
        seed=config["seed"],
        scale=report_scale,
    message:
        "Run report results/report/index.html"
    shell:
        "PYTHONPATH=$(dirname {input.script})/../src python {input.script}"
        " --sections {input.sections} --cohort-report {input.qc} --seed {params.seed} {params.scale}"
        " --out {output} 2> {log}"
