rule convert_patient:
    input:
        sources=convert_inputs,
        script=script_path("convert_patient"),
    output:
        directory("results/converted/{patient}"),
    log:
        "logs/convert/{patient}.log",
    benchmark:
        "benchmarks/convert/{patient}.tsv"
    conda:
        "../envs/imaging.yaml"
    container:
        CONTAINERS["imaging"]
    params:
        cohort=patient_cohort,
        tilt=config["convert"]["tilt"],
        uneven_spacing=config["convert"]["uneven_spacing"],
    message:
        "Converting the images of patient {wildcards.patient}"
    shell:
        "PYTHONPATH=$(dirname {input.script})/../src python {input.script}"
        " --cohort {params.cohort} --patient {wildcards.patient}"
        " --out {output} --tilt {params.tilt} --uneven-spacing {params.uneven_spacing} 2> {log}"
