rule demo_cohort:
    input:
        script=script_path("make_demo_cohort"),
    output:
        tables=multiext(
            f"{DEMO_OUT}/{{study}}/",
            "images.csv",
            "clinical.csv",
            "outcomes.csv",
            "splits.csv",
            "oracle.json",
        ),
        images=directory(f"{DEMO_OUT}/{{study}}/images"),
    log:
        "logs/demo/{study}.log",
    benchmark:
        "logs/benchmarks/demo/{study}.tsv"
    conda:
        "../envs/imaging.yaml"
    container:
        CONTAINERS["imaging"]
    params:
        out=DEMO_OUT,
        seed=DEMO["seed"],
        patients=lambda wildcards: demo_patients(wildcards.study),
    message:
        "Writing the synthetic demo cohort of {wildcards.study}"
    shell:
        "PYTHONPATH=$(dirname {input.script})/../src python {input.script}"
        " --out {params.out} --seed {params.seed}"
        " --patients {params.patients} --study {wildcards.study} 2> {log}"
