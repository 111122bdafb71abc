rule extract_lesions:
    input:
        converted="results/converted/{patient}",
        predicted=lesion_predicted_masks,
        script=script_path("extract_lesions"),
    output:
        directory("results/{study}/lesions/{patient}"),
    log:
        "logs/lesions/{study}/{patient}.log",
    benchmark:
        "benchmarks/lesions/{study}/{patient}.tsv"
    conda:
        "../envs/imaging.yaml"
    container:
        CONTAINERS["imaging"]
    params:
        settings=lesion_settings_json,
        seed=config["seed"],
        predicted=lambda wildcards, input: (
            f"--predicted-masks {' '.join(input.predicted)}" if input.predicted else ""
        ),
    message:
        "Lesion crops of {wildcards.patient} ({wildcards.study})"
    shell:
        "PYTHONPATH=$(dirname {input.script})/../src python {input.script}"
        " --converted results/converted --patient {wildcards.patient}"
        " --settings {params.settings} --seed {params.seed} {params.predicted}"
        " --out {output} 2> {log}"
