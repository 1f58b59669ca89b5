# Sourced by quickstart.sh and .ci/run: a virtualenv (unless one is active), the requirements, the default model.
set -euo pipefail
if [ -z "${VIRTUAL_ENV:-}" ]; then
    [ -x .venv/bin/python ] || "${PYTHON:-python3}" -m venv .venv
    source .venv/bin/activate
fi
python -m pip install --quiet --disable-pip-version-check -r requirements.txt
python models/prepare_default_model.py
export TOKENIZERS_PARALLELISM=false
