#!/usr/bin/env bash
# From a fresh clone: install, prepare SmolLM2-135M offline, run Stage 1 (alpha 5, K 100) and Stage 2
# on the seed's Bookends text, and print the critical set.
set -euo pipefail
cd "$(dirname "$0")"
source scripts/setup.sh
MODEL=models/smollm2-135m
TEXT=$(python -c "from critical_neurons.model.folding import BOOKENDS_TEXT; print(BOOKENDS_TEXT)")
python method/1_importance_evaluation.py --model_path "$MODEL" --input_text "$TEXT" \
    --noise_scale 5 --num_samples 100 --output_file neurons/importance_ranked_neurons.json
python method/2_neuron_identification.py --model_path "$MODEL" --neuron_file neurons/importance_ranked_neurons.json \
    --test_text "$TEXT" --output_file results/critical_neurons_result.json
python -m critical_neurons.reporting.console results/critical_neurons_result.json
