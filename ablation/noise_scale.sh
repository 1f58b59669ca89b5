#!/usr/bin/env bash
# Noise-scale ablation: alpha = 1 3 5 7 10 at K = 100 on the seed's Bookends text.
# Writes OUT/noise_scale_<alpha>_neurons.json (stage 1) and OUT/noise_scale_<alpha>_critical.json
# (stage 2) per alpha, then OUT/noise_scale_summary.{md,csv} against alpha = 5.
#   bash ablation/noise_scale.sh [MODEL_PATH=models/smollm2-135m] [OUT=results/ablation]
# Environment: NUM_SAMPLES (K, default 100), MAX_MAGNITUDE (stage-2 threshold, default 1.0).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MODEL=${1:-models/smollm2-135m}
OUT=${2:-results/ablation}
TEXT=$(cat "$ROOT/ablation/texts/bookends.txt")

for alpha in 1 3 5 7 10; do
    python "$ROOT/method/1_importance_evaluation.py" --model_path "$MODEL" --input_text "$TEXT" \
        --noise_scale "$alpha" --num_samples "${NUM_SAMPLES:-100}" --output_file "$OUT/noise_scale_${alpha}_neurons.json"
    python "$ROOT/method/2_neuron_identification.py" --model_path "$MODEL" --neuron_file "$OUT/noise_scale_${alpha}_neurons.json" \
        --test_text "$TEXT" --max_magnitude "${MAX_MAGNITUDE:-1.0}" --output_file "$OUT/noise_scale_${alpha}_critical.json"
done
python "$ROOT/ablation/summarize.py" --rankings "$OUT"/noise_scale_{1,3,5,7,10}_neurons.json \
    --default "$OUT/noise_scale_5_neurons.json" --title "Noise scale (alpha) ablation" --output "$OUT/noise_scale_summary.md"
