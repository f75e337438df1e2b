#!/usr/bin/env bash
# Every GPU check of the benchmarks in one run: the CUDA tests, then the benchmarks on CUDA, each
# step under its own time limit so that one slow step cannot use up a short GPU lease. Results
# (JSON, logs) go to $OUT (default gpu-results/). Run from the repository root on a machine whose
# python3 has a CUDA build of PyTorch:
#
#   bash benchmarks/gpu.sh                 # everything, about 8 minutes on one H100
#   STEPS="tests physics" bash benchmarks/gpu.sh
#
# Steps (STEPS, in this order): tests (pytest -m cuda); physics (FFT, A and Aᴴ against bare
# torch.fft, which calls cuFFT); models (inference of every model at brain, knee and full-knee
# 640 × 368 size; training steps with and without checkpointing, with peak GPU memory); training
# (the paper configurations' training step in float32) and training_bf16 (the same, bf16-mixed);
# inference (batch reconstruction end to end against compute alone).
#
# Not in the default list, because it takes the lease's remaining minutes: pretrain continues the
# shipped CIRIM on the GPU (configs/pretrained/cirim_brain_gpu.yaml) for MINUTES (default 8) and
# brings back $OUT/pretrain/{last.ckpt,config.yaml,metrics.csv}. Put those three files into
# gpu-runs/cirim_brain_gpu/ (checkpoints/last.ckpt, checkpoints/config.yaml, metrics.csv) and commit
# them (the checkpoint is 0.6 MB): on the next lease the step resumes the run instead of starting it.
#
#   STEPS=pretrain MINUTES=9 bash benchmarks/gpu.sh
#
# CPU_DRY_RUN=1 runs the steps without a GPU (a check of the script itself), e.g.
#   CPU_DRY_RUN=1 STEPS=pretrain MINUTES=0.5 PRETRAIN_ARGS="trainer.accelerator=cpu \
#       data.num_workers=1 data.simulation.train_slices=3 data.simulation.val_slices=2" bash benchmarks/gpu.sh
#
# Dependencies that the machine's Python lacks can travel as wheels in .whl/ (Python 3.12 there):
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --platform manylinux2014_x86_64 \
#       -d .whl sigpy pywavelets monai nilearn nibabel pydicom ismrmrd xsdata
# this script installs them into /tmp/site first. The package itself is used from the checkout.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-gpu-results}"
mkdir -p "$OUT"
PY="${PYTHON:-python3}"
if compgen -G ".whl/*.whl" >/dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH="/tmp/site:${PYTHONPATH:-}"
fi
# the CLI installs as mrirecon_cli from cli/: the same name from the checkout
mkdir -p /tmp/mrirecon_cli_path && ln -sfn "$PWD/cli" /tmp/mrirecon_cli_path/mrirecon_cli
export PYTHONPATH="$PWD:/tmp/mrirecon_cli_path:${PYTHONPATH:-}" PYTHONUNBUFFERED=1
STEPS="${STEPS:-tests physics models training training_bf16 inference}"

"$PY" - <<'EOF' | tee "$OUT/device.txt"
import torch
print("torch", torch.__version__, "CUDA", torch.version.cuda)
import os
if not torch.cuda.is_available():
    if os.environ.get("CPU_DRY_RUN") == "1":
        print("no CUDA device: a dry run of the script's plumbing on the CPU (CPU_DRY_RUN=1)")
        raise SystemExit(0)
    raise SystemExit("no CUDA device: these checks need one")
print(torch.cuda.get_device_name(0), f"{torch.cuda.get_device_properties(0).total_memory / 2**30:.0f} GiB")
EOF
[ "${PIPESTATUS[0]}" -eq 0 ] || exit 1

status=0
step() {  # step NAME SECONDS COMMAND...: run, log to $OUT/NAME.log, note the outcome
    local name=$1 limit=$2
    shift 2
    case " $STEPS " in *" $name "*) ;; *) return 0 ;; esac
    echo "== $name (limit ${limit} s): $*"
    local start=$SECONDS
    timeout "$limit" "$@" >"$OUT/$name.log" 2>&1
    local rc=$?
    tail -n 25 "$OUT/$name.log"
    echo "== $name: exit $rc after $((SECONDS - start)) s"
    echo "$name $rc $((SECONDS - start))" >>"$OUT/steps.txt"
    [ "$rc" -eq 0 ] || status=1
}

step tests 150 "$PY" -m pytest -q -m cuda -p no:cacheprovider tests/
step physics 60 "$PY" -m benchmarks.physics --device cuda --json "$OUT/physics_cuda.json"
step models 150 "$PY" -m benchmarks.models --device cuda --no-cs --sizes brain knee knee_full \
    --json "$OUT/models_cuda.json"
step training 90 "$PY" -m benchmarks.training --device cuda --coils 8 --height 218 --width 170 \
    --output "$OUT/training_cuda.json"
step training_bf16 90 "$PY" -m benchmarks.training --device cuda --coils 8 --height 218 --width 170 \
    --precision bf16-mixed --output "$OUT/training_cuda_bf16.json"
step inference 60 "$PY" -m benchmarks.inference --device cuda --no-dicom --output "$OUT/inference_cuda.json"

export OUT PY MINUTES="${MINUTES:-8}" PRETRAIN_ARGS="${PRETRAIN_ARGS:-}"
pretrain() {  # train (or resume) the GPU recipe for $MINUTES, then copy what a resume needs to $OUT
    local run=/tmp/pretrain_run carried=gpu-runs/cirim_brain_gpu resume=()
    rm -rf "$run"
    if [ -f "$carried/checkpoints/last.ckpt" ]; then
        mkdir -p "$run" && cp -r "$carried/checkpoints" "$run/" && resume=(--resume)
        echo "resuming the carried run in $carried"
    fi
    # shellcheck disable=SC2086  # PRETRAIN_ARGS: extra overrides, split on spaces
    "$PY" -m mrirecon_cli train -c configs/pretrained/cirim_brain_gpu.yaml -o "$run" "${resume[@]}" \
        "trainer.max_minutes=$MINUTES" $PRETRAIN_ARGS
    local rc=$?
    mkdir -p "$OUT/pretrain"
    cp "$run/checkpoints/last.ckpt" "$run/checkpoints/config.yaml" "$OUT/pretrain/" 2>/dev/null
    cp "$(ls -d "$run"/logs/csv/version_* | sort -V | tail -n 1)/metrics.csv" "$OUT/pretrain/" 2>/dev/null
    return $rc
}
# the budget ends the run on an epoch boundary; the limit only catches a hang
export -f pretrain
step pretrain "$(python3 -c "print(int(float('$MINUTES') * 60) + 180)")" bash -c pretrain
exit $status
