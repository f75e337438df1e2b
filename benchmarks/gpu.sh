#!/usr/bin/env bash
# Every GPU check of the benchmarks in one run: the CUDA tests, then the benchmarks on CUDA, each
# step under its own time limit, and all of them before DEADLINE seconds (default 560) so that one
# slow step cannot use up a short GPU lease or the caller's per-command limit. Results (JSON, logs,
# device.txt with the GPU, driver, commit and date) are packed after every step into
# $OUT/gpu-results.tgz (OUT default gpu-results/), so a run cut short still returns the steps it
# finished; RESULTS=DIR keeps them unpacked in DIR as well (RESULTS=$OUT: unpacked only). Run from
# the repository root on a machine whose python3 has a CUDA build of PyTorch:
#
#   bash benchmarks/gpu.sh                 # the default steps, about 8 minutes on one H100
#   STEPS="tests physics" bash benchmarks/gpu.sh
#
# Steps (STEPS, in this order; a name not in this list stops the script before it installs
# anything): tests (pytest -m cuda); physics (FFT, A and Aᴴ against bare torch.fft, which calls
# cuFFT); models (inference of the models at full-knee 640 × 368, brain and knee size first; training
# steps with and without checkpointing, with peak GPU memory; the CPU-only
# CS baseline and the untrainable baselines' training rows are left out; each row is saved as it is
# measured); training (the paper configurations' training step in float32) and training_bf16 (the
# same, bf16-mixed; both save each row as it is measured); inference and inference_bf16 (batch
# reconstruction end to end against compute alone, float32 and bf16-mixed). A step
# that would start with under 20 s before the deadline is skipped; every step's limit ends at the
# deadline.
#
# Not in the default list, because it takes the lease's remaining minutes: the default steps and
# pretrain each take about 9 minutes, so a 15-minute lease runs one or the other. pretrain continues the
# shipped CIRIM on the GPU (configs/pretrained/cirim_brain_gpu.yaml) for MINUTES (default 7, fewer
# when the deadline is nearer) and brings back $RESULTS/pretrain/{last.ckpt,config.yaml,metrics.csv}
# (metrics.csv: the carried run's rows, then this lease's), also when the training was stopped at
# its limit. Put those three files into gpu-runs/cirim_brain_gpu/ (checkpoints/last.ckpt,
# checkpoints/config.yaml, metrics.csv) and commit them (the checkpoint is 0.6 MB): on the next
# lease the step resumes the run instead of starting it.
#
#   STEPS=pretrain MINUTES=7 bash benchmarks/gpu.sh
#
# CPU_DRY_RUN=1 runs the steps without a GPU (a check of the script itself), e.g.
#   CPU_DRY_RUN=1 STEPS=pretrain MINUTES=0.5 PRETRAIN_ARGS="trainer.accelerator=cpu \
#       data.num_workers=1 data.simulation.train_slices=3 data.simulation.val_slices=2" bash benchmarks/gpu.sh
#
# Dependencies that the machine's Python lacks travel as wheels in .whl/ (git-ignored: a runner must
# be told to carry it; Python 3.12 there), at the versions of constraints.txt, one of each (two
# versions of one package are refused):
#   rm -rf .whl && pip download --no-deps --only-binary=:all: --python-version 3.12 \
#       --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 -c constraints.txt -d .whl \
#       sigpy pywavelets monai nilearn nibabel pydicom ismrmrd xsdata
# this script installs them into its scratch folder first, and stops at once when a package the
# steps import is missing. The package itself is used from the checkout. Scratch (the wheels, the
# training run) goes to a fresh folder under $TMPDIR (default /tmp), removed at the end, so that
# two runs on one machine do not share it.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
KNOWN_STEPS="tests physics models training training_bf16 inference inference_bf16 pretrain"
STEPS="${STEPS:-tests physics models training training_bf16 inference inference_bf16}"
for name in $STEPS; do
    case " $KNOWN_STEPS " in *" $name "*) ;; *) echo "unknown step '$name' in STEPS; known: $KNOWN_STEPS"; exit 2 ;; esac
done
OUT="${OUT:-gpu-results}"
DEADLINE="${DEADLINE:-560}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/mrirecon-gpu.XXXXXX")" || exit 1
trap 'rm -rf "$WORK"' EXIT
RESULTS="${RESULTS:-$WORK/results}"
mkdir -p "$OUT" "$RESULTS"
# a folder used before (a warm machine) keeps nothing of that run
rm -rf "$RESULTS/steps.txt" "$RESULTS/device.txt" "$RESULTS/pretrain" "$OUT/gpu-results.tgz"
for name in $KNOWN_STEPS; do rm -f "$RESULTS/$name.log"; done
rm -f "$RESULTS"/physics_cuda.json "$RESULTS"/models_cuda.json "$RESULTS"/training_cuda*.json "$RESULTS"/inference_cuda*.json
PY="${PYTHON:-python3}"
if compgen -G ".whl/*.whl" >/dev/null; then
    twice=$(for wheel in .whl/*.whl; do basename "$wheel" | cut -d- -f1 | tr 'A-Z-' 'a-z_'; done | sort | uniq -d)
    [ -z "$twice" ] || { echo "two versions of $twice in .whl/: download them again (see the header)"; exit 1; }
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$WORK/site" \
        .whl/*.whl || { echo "installing the wheels of .whl/ failed"; exit 1; }
    export PYTHONPATH="$WORK/site:${PYTHONPATH:-}"
fi
# the CLI installs as mrirecon_cli from cli/: the same name from the checkout
mkdir -p "$WORK/cli_path" && ln -sfn "$PWD/cli" "$WORK/cli_path/mrirecon_cli"
export PYTHONPATH="$PWD:$WORK/cli_path:${PYTHONPATH:-}" PYTHONUNBUFFERED=1

pack() {  # $RESULTS → $OUT/gpu-results.tgz, when the results are not written into $OUT itself
    [ "$RESULTS" -ef "$OUT" ] && return 0
    tar czf "$OUT/.gpu-results.tgz" -C "$RESULTS" . && mv "$OUT/.gpu-results.tgz" "$OUT/gpu-results.tgz"
}

"$PY" - <<'PROBE' | tee "$RESULTS/device.txt"
import datetime
import importlib
import os
import subprocess

print("date", datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"))
commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
print("commit", commit or "unknown (no git)")

missing = []
for name in ("h5py", "pytorch_lightning", "sigpy", "pywt", "monai", "nilearn", "nibabel", "pydicom", "ismrmrd"):
    try:
        importlib.import_module(name)
    except ImportError as error:
        missing.append(f"{name} ({error})")
if missing:
    raise SystemExit("missing Python packages: " + ", ".join(missing) + "; carry them as wheels in .whl/")
import torch

import benchmarks.models  # noqa: F401  (the checkout imports on this Python and torch)
import mrirecon  # noqa: F401

print("torch", torch.__version__, "CUDA", torch.version.cuda)
if not torch.cuda.is_available():
    if os.environ.get("CPU_DRY_RUN") == "1":
        print("no CUDA device: a dry run of the script's plumbing on the CPU (CPU_DRY_RUN=1)")
        raise SystemExit(0)
    raise SystemExit("no CUDA device: these checks need one")
print(torch.cuda.get_device_name(0), f"{torch.cuda.get_device_properties(0).total_memory / 2**30:.0f} GiB")
print("TF32: matmul", torch.backends.cuda.matmul.allow_tf32, "cuDNN convolutions", torch.backends.cudnn.allow_tf32)
smi = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"], capture_output=True, text=True)
print("driver", smi.stdout.strip() or "unknown")
PROBE
[ "${PIPESTATUS[0]}" -eq 0 ] || { pack; exit 1; }

status=0
step() {  # step NAME SECONDS COMMAND...: run, log to $RESULTS/NAME.log, note the outcome
    local name=$1 limit=$2
    shift 2
    case " $STEPS " in *" $name "*) ;; *) return 0 ;; esac
    local left=$((DEADLINE - SECONDS))
    if [ "$left" -lt 20 ]; then
        echo "== $name: skipped, ${left} s before the deadline (DEADLINE=$DEADLINE)"
        echo "$name skipped 0" >>"$RESULTS/steps.txt"
        status=1
        pack
        return 0
    fi
    [ "$limit" -le "$left" ] || limit=$left
    echo "== $name (limit ${limit} s): $*"
    local start=$SECONDS
    # a step that ignores the stop signal is killed 15 s later: the script must end inside the lease
    STEP_LIMIT=$limit timeout -k 15 "$limit" "$@" >"$RESULTS/$name.log" 2>&1
    local rc=$?
    tail -n 25 "$RESULTS/$name.log"
    echo "== $name: exit $rc after $((SECONDS - start)) s"
    echo "$name $rc $((SECONDS - start))" >>"$RESULTS/steps.txt"
    [ "$rc" -eq 0 ] || status=1
    pack
}

step tests 150 "$PY" -m pytest -q -m cuda -p no:cacheprovider tests/
step physics 60 "$PY" -m benchmarks.physics --device cuda --json "$RESULTS/physics_cuda.json"
step models 170 "$PY" -m benchmarks.models --device cuda --no-cs --sizes knee_full brain knee \
    --exclude 'cs_l1wavelet:*' 'zero_filled:*:train*' 'sense:*:train*' --json "$RESULTS/models_cuda.json"
step training 90 "$PY" -m benchmarks.training --device cuda --coils 8 --height 218 --width 170 \
    --output "$RESULTS/training_cuda.json"
step training_bf16 90 "$PY" -m benchmarks.training --device cuda --coils 8 --height 218 --width 170 \
    --precision bf16-mixed --output "$RESULTS/training_cuda_bf16.json"
step inference 60 "$PY" -m benchmarks.inference --device cuda --no-dicom --output "$RESULTS/inference_cuda.json"
step inference_bf16 45 "$PY" -m benchmarks.inference --device cuda --no-dicom --precision bf16-mixed \
    --output "$RESULTS/inference_cuda_bf16.json"

# PRETRAIN_SLACK: seconds of the step beyond its training minutes, for start-up (CUDA, workers,
# the template) and the last epoch's checkpoint
export PY MINUTES="${MINUTES:-7}" PRETRAIN_ARGS="${PRETRAIN_ARGS:-}" PRETRAIN_SLACK="${PRETRAIN_SLACK:-150}"
export PRETRAIN_RUN="$WORK/pretrain_run" CARRIED=gpu-runs/cirim_brain_gpu
pretrain() {  # train (or resume) the GPU recipe for $MINUTES, fewer when the step's limit is nearer
    local resume=() minutes
    rm -rf "$PRETRAIN_RUN"
    if [ -f "$CARRIED/checkpoints/last.ckpt" ]; then
        mkdir -p "$PRETRAIN_RUN" && cp -r "$CARRIED/checkpoints" "$PRETRAIN_RUN/" && resume=(--resume)
        echo "resuming the carried run in $CARRIED"
    fi
    # start-up and the last epoch's checkpoint fit in PRETRAIN_SLACK seconds
    minutes=$("$PY" -c "print(round(max(min(float('$MINUTES'), ($STEP_LIMIT - $PRETRAIN_SLACK) / 60), 0.001), 3))")
    echo "training for at most $minutes minutes"
    # shellcheck disable=SC2086  # PRETRAIN_ARGS: extra overrides, split on spaces
    "$PY" -m mrirecon_cli train -c configs/pretrained/cirim_brain_gpu.yaml -o "$PRETRAIN_RUN" "${resume[@]}" \
        "trainer.max_minutes=$minutes" $PRETRAIN_ARGS
}
collect_pretrain() {  # what a resume needs; runs after the step, also when it was stopped at its limit
    local back="$RESULTS/pretrain" logs
    mkdir -p "$back"
    cp "$PRETRAIN_RUN/checkpoints/last.ckpt" "$PRETRAIN_RUN/checkpoints/config.yaml" "$back/" 2>/dev/null
    logs=$(ls -d "$PRETRAIN_RUN"/logs/csv/version_* 2>/dev/null | sort -V | tail -n 1)
    [ -n "$logs" ] || return 0
    # the carried run's rows, then this lease's (a resumed run's log holds only its own)
    "$PY" - "$CARRIED/metrics.csv" "$logs/metrics.csv" "$back/metrics.csv" <<'MERGE'
import csv
import sys
from pathlib import Path

rows, fields = [], []
for source in sys.argv[1:3]:
    if Path(source).is_file():
        with open(source, newline="") as f:
            reader = csv.DictReader(f)
            fields += [name for name in reader.fieldnames or () if name not in fields]
            rows += list(reader)
with open(sys.argv[3], "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)
MERGE
}
export -f pretrain
# the time budget ends the run on an epoch boundary; the step's limit only catches a hang
step pretrain "$("$PY" -c "print(int(float('$MINUTES') * 60) + $PRETRAIN_SLACK)")" bash -c pretrain
case " $STEPS " in *" pretrain "*) collect_pretrain; pack ;; esac
exit $status
