# Sourced by quickstart.sh and .ci/run: a virtualenv (unless one is active), the requirements, the default model.
set -euo pipefail
if [ -z "${VIRTUAL_ENV:-}" ]; then
    [ -x .venv/bin/python ] || "${PYTHON:-python3}" -m venv .venv
    source .venv/bin/activate
fi
python -m pip install --quiet --disable-pip-version-check -r requirements.txt
python models/prepare_default_model.py
# HumanEval runs generated code in bubblewrap when it works (README); best effort, never fatal.
if ! command -v bwrap >/dev/null 2>&1; then
    as_root=""
    [ "$(id -u)" -eq 0 ] || as_root="sudo -n"
    install_bwrap="$as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap"
    if ! command -v apt-get >/dev/null 2>&1 || ! { $install_bwrap || { $as_root apt-get update -qq && $install_bwrap; }; } >/dev/null 2>&1; then
        echo "setup: bubblewrap (bwrap) could not be installed: HumanEval runs generated code unisolated and its sandbox tests skip" >&2
    fi
    unset as_root install_bwrap
fi
export TOKENIZERS_PARALLELISM=false
