# Two probe jobs for the SLURM profile test (tests/integration/test_slurm.py): a GPU job that
# records what the allocation gave it, and a job that fails on its first attempt only.


rule all:
    input:
        "probe/gpu.txt",
        "probe/flaky.txt",


rule gpu_probe:
    output:
        "probe/gpu.txt",
    resources:
        gpu=1,
    shell:
        "echo job=$SLURM_JOB_ID cuda=$CUDA_VISIBLE_DEVICES > {output}"


rule flaky:
    output:
        "probe/flaky.txt",
    params:
        marker="probe/first_attempt_failed",
    shell:
        "if [ ! -e {params.marker} ]; then touch {params.marker}; exit 1; fi;"
        " echo job=$SLURM_JOB_ID > {output}"
