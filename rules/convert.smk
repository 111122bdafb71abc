rule convert_patient:
    input:
        convert_inputs,
    output:
        directory("results/converted/{patient}"),
    log:
        "logs/convert/{patient}.log",
    benchmark:
        "benchmarks/convert/{patient}.tsv"
    conda:
        f"{ENVS}/imaging.yaml"
    container:
        CONTAINERS["imaging"]
    params:
        cohort=patient_cohort,
        tilt=config["convert"]["tilt"],
        uneven_spacing=config["convert"]["uneven_spacing"],
    message:
        "Converting the images of patient {wildcards.patient}"
    shell:
        "{PY}/convert_patient.py --cohort {params.cohort} --patient {wildcards.patient}"
        " --out {output} --tilt {params.tilt} --uneven-spacing {params.uneven_spacing} 2> {log}"
