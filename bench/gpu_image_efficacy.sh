#!/usr/bin/env bash
# The pretrained-backbone efficacy protocol (bench/efficacy_pretrained.py) at full scale on one GPU: flowers5 at
# 128 px, 10 and 50 labelled images per class, 3 seeds, EfficientNet-Lite0 frozen (Flatten head) and fully
# fine-tuned (none / flip+rotate / tuned), and distillation into a small CNN through the unlabelled pool.
# Planned to take under 8 minutes on one H100 (the CPU data path, decode + augmentation, is the limit).
#
#   bash bench/gpu_image_efficacy.sh [OUT.json] [extra efficacy_pretrained.py options]
#
# Needs the extra 'pretrained' (pip install -e '.[pretrained]') and ../shared/data/flowers5 (or
# AUGSVC_SHARED_DATA). Without a GPU it runs the protocol on CPU at a reduced scale (see
# docs/benchmarks.md): what was reduced is the first line of the output.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-gpu_image_efficacy.json}"
shift || true
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 NO_ALBUMENTATIONS_UPDATE=1 RAY_AUTH_MODE=disabled
if python -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  python -c "import torch; print('GPU:', torch.cuda.get_device_name(0))"
  # the two tune searches are trial-overhead bound (Ray), so 8 trials of 20 epochs instead of 12 x 30
  exec timeout 470 python bench/efficacy_pretrained.py --device cuda --threads 8 --trials 8 --tune-epochs 20 \
    --json "$out" "$@"
fi
echo "no CUDA device: the CPU-reduced protocol (see docs/benchmarks.md)"
exec env OMP_NUM_THREADS=1 python bench/efficacy_pretrained.py --device cpu --threads 1 --per-class 10 --seeds 0 1 2 \
  --ft-epochs 4 --freeze-epochs 1 --ft-arms none,fliprotate --student-epochs 15 --student-width 0.25 --trials 6 \
  --tune-epochs 20 --pool-per-class 100 --test-per-class 150 --json "$out" "$@"
