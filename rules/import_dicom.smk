for study in [s for s in STUDIES if is_imported(s)]:

    rule:
        name:
            f"import_cohort_{study}"
        input:
            script=script_path("import_dicom"),
        output:
            tables=[
                cohort_dir(study) / name
                for name in ["images.csv", "clinical.csv", "import_report.json"]
                + (["outcomes.csv"] if STUDIES[study]["import"].get("outcomes") else [])
            ],
            dicom=directory(cohort_dir(study) / "dicom"),
        log:
            f"logs/import/{study}.log",
        benchmark:
            f"logs/benchmarks/import/{study}.tsv"
        conda:
            "../envs/imaging.yaml"
        container:
            CONTAINERS["imaging"]
        threads: 2
        params:
            out=cohort_dir(study),
            options=opts.import_options(STUDIES[study]["import"]),
            # the rows planned from the tree: a tree that gains or loses series imports again
            plan=tables.rows_digest(IMAGES[study]),
        message:
            f"Importing the DICOM tree of {study} into {cohort_dir(study)}"
        shell:
            "PYTHONPATH=$(dirname {input.script})/../src python {input.script}"
            " --out {params.out} {params.options} --workers {threads} 2> {log}"
