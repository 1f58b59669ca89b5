"""The seed README's comparative-evaluation commands call this path: it runs evaluation/wikitext_evaluator.py."""

import runpy
from pathlib import Path

if __name__ == "__main__":
    runpy.run_path(str(Path(__file__).resolve().parents[1] / "evaluation" / "wikitext_evaluator.py"), run_name="__main__")
