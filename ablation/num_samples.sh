#!/usr/bin/env bash
# Sample-count ablation: K = 25 50 75 100 125 at alpha = 5 on the seed's Bookends text.
# Writes OUT/num_samples_<K>_neurons.json (stage 1) and OUT/num_samples_<K>_critical.json
# (stage 2) per K, then OUT/num_samples_summary.{md,csv} against K = 100.
#   bash ablation/num_samples.sh [MODEL_PATH=models/smollm2-135m] [OUT=results/ablation]
# Environment: MAX_MAGNITUDE (stage-2 threshold, default 1.0).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MODEL=${1:-models/smollm2-135m}
OUT=${2:-results/ablation}
TEXT=$(cat "$ROOT/ablation/texts/bookends.txt")

for samples in 25 50 75 100 125; do
    python "$ROOT/method/1_importance_evaluation.py" --model_path "$MODEL" --input_text "$TEXT" \
        --noise_scale 5 --num_samples "$samples" --output_file "$OUT/num_samples_${samples}_neurons.json"
    python "$ROOT/method/2_neuron_identification.py" --model_path "$MODEL" --neuron_file "$OUT/num_samples_${samples}_neurons.json" \
        --test_text "$TEXT" --max_magnitude "${MAX_MAGNITUDE:-1.0}" --output_file "$OUT/num_samples_${samples}_critical.json"
done
python "$ROOT/ablation/summarize.py" --rankings "$OUT"/num_samples_{25,50,75,100,125}_neurons.json \
    --default "$OUT/num_samples_100_neurons.json" --title "Sample count (K) ablation" --output "$OUT/num_samples_summary.md"
