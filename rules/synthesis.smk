rule train_ddpm:
    input:
        splits=dag.SPLITS,
        converted=index_of("converted"),
        script=script_path("train_ddpm"),
    output:
        model=dag.DDPM_MODEL,
        history=dag.DDPM_HISTORY,
        summary=dag.DDPM_SUMMARY,
    log:
        "logs/ddpm/{study}/train.log",
    benchmark:
        "logs/benchmarks/ddpm/{study}/train.tsv"
    priority: 5
    conda:
        "../envs/torch.yaml"
    container:
        CONTAINERS["torch"]
    threads: TRAIN_THREADS
    resources:
        gpu=1,
    params:
        settings=ddpm_model_settings,
        seed=config["seed"],
        device=config["device"],
        resume=dag.DDPM_RESUME,
    message:
        "Training the diffusion model of {wildcards.study} (resumes from {params.resume})"
    shell:
        "PYTHONPATH=$(dirname {input.script})/../src python {input.script}"
        f" --converted {dag.CONVERTED_ROOT} --splits {{input.splits}} --settings {{params.settings}}"
        " --seed {params.seed} --device {params.device} --resume {params.resume}"
        " --out {output.model} --history {output.history} --summary {output.summary} 2> {log}"


rule sample_ddpm_batch:
    input:
        model=dag.DDPM_MODEL,
        converted=ddpm_batch_converted,
        script=script_path("run_batch"),
        stage=script_path("sample_ddpm"),
    output:
        directory(dag.batch("ddpm")),
    log:
        "logs/ddpm/{study}/sample/batches/{batch}.log",
    benchmark:
        "logs/benchmarks/ddpm/{study}/sample/batches/{batch}.tsv"
    priority: 5
    conda:
        "../envs/torch.yaml"
    container:
        CONTAINERS["torch"]
    resources:
        gpu=1,
    params:
        batch_items=ddpm_batch_items,
        options=ddpm_sampling_params,
        seed=config["seed"],
        device=config["device"],
    message:
        "Synthetic CTs of the masks of batch {wildcards.batch} of {wildcards.study}"
    shell:
        "PYTHONPATH=$(dirname {input.script})/../src python {input.script}"
        " --script sample_ddpm --items {params.batch_items} --out {output}"
        " --label 'ddpm {wildcards.study} batch {wildcards.batch}' 2> {log}"


rule sample_ddpm:
    input:
        staging=publish_input("ddpm", TRAINING),
        script=script_path("publish", "sh"),
    output:
        dag.DDPM_SAMPLE,
    log:
        "logs/ddpm/{study}/sample/{patient}.log",
    localrule: True
    conda:
        "../envs/torch.yaml"
    container:
        CONTAINERS["torch"]
    # a few file links: it takes no core from the batch jobs (see oncoflow.batch)
    threads: 0
    message:
        "Synthetic CT of {wildcards.patient}'s masks ({wildcards.study})"
    shell:
        "sh {input.script} {input.staging} {wildcards.patient} {log}"
        " {wildcards.patient}.nii.gz {output} 2>> {log}"


rule evaluate_ddpm:
    input:
        model=dag.DDPM_MODEL,
        history=dag.DDPM_HISTORY,
        splits=dag.SPLITS,
        samples=ddpm_samples,
        script=script_path("evaluate_ddpm"),
    output:
        metrics=dag.DDPM_METRICS,
        panel=dag.DDPM_PANEL,
        loss=dag.DDPM_LOSS,
    log:
        "logs/ddpm/{study}/evaluate.log",
    benchmark:
        "logs/benchmarks/ddpm/{study}/evaluate.tsv"
    conda:
        "../envs/torch.yaml"
    container:
        CONTAINERS["torch"]
    message:
        "Fidelity of the synthetic CTs of {wildcards.study} (held-out patients)"
    shell:
        "PYTHONPATH=$(dirname {input.script})/../src python {input.script}"
        f" --model {{input.model}} --converted {dag.CONVERTED_ROOT} --samples {{input.samples}}"
        " --splits {input.splits} --history {input.history} --out {output.metrics}"
        " --panel {output.panel} --loss {output.loss} 2> {log}"
