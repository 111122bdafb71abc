rule train_ddpm:
    input:
        splits="results/{study}/splits.csv",
        converted=index_of("converted"),
        script=script_path("train_ddpm"),
    output:
        model="results/{study}/ddpm/model.pt",
        history="results/{study}/ddpm/history.csv",
        summary="results/{study}/ddpm/train.json",
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
        resume="results/{study}/ddpm/resume.pt",
    message:
        "Training the diffusion model of {wildcards.study} (resumes from {params.resume})"
    shell:
        "PYTHONPATH=$(dirname {input.script})/../src python {input.script}"
        " --converted results/converted --splits {input.splits} --settings {params.settings}"
        " --seed {params.seed} --device {params.device} --resume {params.resume}"
        " --out {output.model} --history {output.history} --summary {output.summary} 2> {log}"


rule sample_ddpm_batch:
    input:
        model="results/{study}/ddpm/model.pt",
        converted=ddpm_batch_converted,
        script=script_path("run_batch"),
        stage=script_path("sample_ddpm"),
    output:
        directory("results/.batches/ddpm/{study}/{batch}"),
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
        staging=publish_input("ddpm"),
        script=script_path("publish", "sh"),
    output:
        "results/{study}/ddpm/samples/{patient}.nii.gz",
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
        model="results/{study}/ddpm/model.pt",
        history="results/{study}/ddpm/history.csv",
        splits="results/{study}/splits.csv",
        samples=ddpm_samples,
        script=script_path("evaluate_ddpm"),
    output:
        metrics="results/{study}/ddpm/metrics.json",
        panel="results/{study}/ddpm/panel.png",
        loss="results/{study}/ddpm/loss.png",
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
        " --model {input.model} --converted results/converted --samples {input.samples}"
        " --splits {input.splits} --history {input.history} --out {output.metrics}"
        " --panel {output.panel} --loss {output.loss} 2> {log}"
