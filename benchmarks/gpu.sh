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
# Dependencies that the machine's Python lacks can travel as wheels in .whl/ (Python 3.12 there):
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --platform manylinux2014_x86_64 \
#       -d .whl sigpy monai nilearn nibabel pydicom ismrmrd xsdata
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
export PYTHONPATH="$PWD:${PYTHONPATH:-}" PYTHONUNBUFFERED=1
STEPS="${STEPS:-tests physics models training training_bf16 inference}"

"$PY" - <<'EOF' | tee "$OUT/device.txt"
import torch
print("torch", torch.__version__, "CUDA", torch.version.cuda)
if not torch.cuda.is_available():
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
exit $status
