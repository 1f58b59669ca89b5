#!/usr/bin/env bash
# Input-text ablation: stage 1 and stage 2 on each text in ablation/texts/ (Wikipedia, code, dialogue,
# French, Chinese, the seed's Bookends paragraph as the default; too_short.txt must be refused).
# Writes OUT/text_<name>_neurons.json and OUT/text_<name>_critical.json per text (stage 2 tests on
# the same text), then OUT/input_texts_summary.{md,csv} against the Bookends text.
#   bash ablation/input_texts.sh [MODEL_PATH=models/smollm2-135m] [OUT=results/ablation]
# Environment: NUM_SAMPLES (K, default 100), MAX_MAGNITUDE (stage-2 threshold, default 1.0).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MODEL=${1:-models/smollm2-135m}
OUT=${2:-results/ablation}

errors=$(mktemp)
trap 'rm -f "$errors"' EXIT
rankings=()
for file in "$ROOT"/ablation/texts/*.txt; do
    name=$(basename "$file" .txt)
    text=$(cat "$file")
    status=0
    # stderr still reaches the terminal and is also kept, to tell a refused text from any other error.
    { python "$ROOT/method/1_importance_evaluation.py" --model_path "$MODEL" --input_text "$text" \
        --noise_scale 5 --num_samples "${NUM_SAMPLES:-100}" --output_file "$OUT/text_${name}_neurons.json" \
        2>&1 1>&3 3>&- | tee "$errors" >&2; } 3>&1 || status=$?
    if [ "$status" -eq 2 ] && grep -q '^error: --input_text' "$errors"; then
        echo "refused $name.txt (the error above); continuing with the other texts" >&2
        continue
    elif [ "$status" -ne 0 ]; then
        exit "$status"  # a model, output or any other error stops the loop at once
    fi
    python "$ROOT/method/2_neuron_identification.py" --model_path "$MODEL" --neuron_file "$OUT/text_${name}_neurons.json" \
        --test_text "$text" --max_magnitude "${MAX_MAGNITUDE:-1.0}" --output_file "$OUT/text_${name}_critical.json"
    rankings+=("$OUT/text_${name}_neurons.json")
done
python "$ROOT/ablation/summarize.py" --rankings "${rankings[@]}" \
    --default "$OUT/text_bookends_neurons.json" --title "Input text ablation" --output "$OUT/input_texts_summary.md"
