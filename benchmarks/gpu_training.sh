#!/bin/bash
# GPU check of the deep-model engine on a finished liver_response demo run (the figures of
# benchmarks/gpu_training.json): the training-step benchmark at three loader settings, then the five
# folds of relation_net with the demo settings and with GPU-sized settings (ResNet-18 branches at the
# 64 px crop size), each fold timed from process start to exit.
#
# Usage: bash benchmarks/gpu_training.sh RUN_DIR OUT_DIR
#   RUN_DIR: a workdir where `snakemake` ran the liver_response demo (resources/, results/)
#   OUT_DIR: where the benchmark JSONs, fold times, predictions and logs go
set -euo pipefail
run=${1:?RUN_DIR}
out=${2:?OUT_DIR}
here=$(cd "$(dirname "$0")/.." && pwd)
export PYTHONPATH=$here/src PYTHONUNBUFFERED=1
lesions=$run/results/liver_response/lesions
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
for cfg in "w4 4 64" "w8 8 64" "w8s128 8 128"; do
    set -- $cfg
    python "$here/benchmarks/training_step.py" --device cuda --lesions "$lesions" --workers "$2" \
        --size "$3" --batch-size 16 --steps 40 --warmup 5 --repeats 3 \
        --out "$out/training_step_cuda_$1.json"
done
demo='{"primary": "MR_T2", "slices": 4, "input_size": 32,
 "network": {"backbone": "resnet10", "dim": 8, "hidden": 16, "dropout": 0.5},
 "epochs": 30, "lr": 0.001, "head_lr_factor": 30, "weight_decay": 0.01, "patience": 10,
 "gamma": 2.0, "monitor": "auc", "warm_start": true, "stems": ["MR_T1", "MR_T2", "MR_T1V"],
 "clinical": ["afp_pre", "afp_post", "dcp_pre", "dcp_post"], "target": "response"}'
gpu=$(python -c 'import json, sys
d = json.loads(sys.argv[1])
d.update(input_size=64, epochs=60, patience=15,
         network={"backbone": "resnet18", "dim": 64, "hidden": 64, "dropout": 0.5})
print(json.dumps(d))' "$demo")
for name in demo gpu; do
    settings=$demo
    [ "$name" = gpu ] && settings=$gpu
    for fold in 0 1 2 3 4; do
        start=$(date +%s.%N)
        python "$here/scripts/train_model.py" --model relation_net \
            --cohort "$run/resources/demo/liver_response" \
            --folds "$run/results/liver_response/folds.json" \
            --splits "$run/results/liver_response/splits.csv" --lesions "$lesions" --fold "$fold" \
            --settings "$settings" --seed 42 --device cuda --threads 2 \
            --out-dir "$out/train/$name/fold_$fold" --resume-dir "$out/resume/$name/fold_$fold" \
            2> "$out/train_${name}_$fold.log"
        echo "$name fold $fold $(python -c "import sys; print(round($(date +%s.%N) - $start, 2))") s" |
            tee -a "$out/fold_times.txt"
    done
    python "$here/scripts/collect_model.py" --folds "$out"/train/$name/fold_*/predictions.csv \
        --out "$out/train/$name/predictions.csv"
done
