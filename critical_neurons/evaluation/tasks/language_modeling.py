"""Texts for the perplexity evaluators (WikiText-103, C4) and the random baseline."""

from __future__ import annotations

from pathlib import Path

from critical_neurons.errors import UsageError
from critical_neurons.evaluation.data import OPTIONAL_TEXT, load_rows, require_fields
from critical_neurons.evaluation.tasks.common import TaskDefaults

WIKITEXT_HUB = "wikitext"
C4_HUB = "allenai/c4"
C4_HUB_FILE = "en/c4-validation.00000-of-00008.json.gz"
TOKEN_FILE_SUFFIXES = (".tokens", ".txt", ".raw")
PERPLEXITY_COLUMNS = ("perplexity", "log10_perplexity", "avg_loss", "total_tokens")
WIKITEXT = TaskDefaults("wikitext", "perplexity", PERPLEXITY_COLUMNS, max_length=512, output_file="results/wikitext_results.json", reference_metric="reference_perplexity")
C4 = TaskDefaults("c4", "perplexity", PERPLEXITY_COLUMNS, max_length=512, output_file="results/c4_results.json", reference_metric="reference_perplexity")


def wikitext_paragraphs(lines: list[str], min_chars: int = 50) -> list[str]:
    """Paragraphs of a WikiText token file: non-heading lines joined, split at blank lines (the reference's local fallback)."""
    paragraphs, current = [], []
    for line in [*lines, ""]:
        stripped = line.strip()
        if stripped.startswith("=") and stripped.endswith("="):
            continue
        if stripped:
            current.append(stripped)
        elif current:
            paragraphs.append(" ".join(current))
            current = []
    return [paragraph for paragraph in paragraphs if len(paragraph) > min_chars]


def wikitext_texts(source: str | None, subset: str = "wikitext-103-v1", split: str = "test", min_chars: int = 50) -> list[str]:
    """Rows with more than ``min_chars`` characters after stripping (the reference's filter), in file order."""
    if source and Path(source).suffix in TOKEN_FILE_SUFFIXES and Path(source).is_file():
        return _some_texts(wikitext_paragraphs(Path(source).read_text(encoding="utf-8").splitlines(), min_chars), source, f"more than {min_chars}")
    rows = load_rows(source or WIKITEXT_HUB, config=subset, split=split)
    require_fields(rows, {"text": OPTIONAL_TEXT}, source or WIKITEXT_HUB)
    texts = (str(row["text"] or "").strip() for row in rows)
    return _some_texts([text for text in texts if len(text) > min_chars], source or WIKITEXT_HUB, f"more than {min_chars}")


def c4_texts(source: str | None, min_chars: int = 50) -> list[str]:
    """``text`` fields with at least ``min_chars`` characters (the reference's >=) from C4 JSON lines."""
    rows = load_rows(source, split="train") if source else load_rows(C4_HUB, data_files=C4_HUB_FILE)
    require_fields(rows, {"text": OPTIONAL_TEXT}, source or C4_HUB)
    texts = (str(row["text"] or "").strip() for row in rows)
    return _some_texts([text for text in texts if len(text) >= min_chars], source or C4_HUB, f"at least {min_chars}")


def _some_texts(texts: list[str], source: str, length: str) -> list[str]:
    """``texts``, refused when empty: before the model loads, not as an error inside the tokenizer."""
    if not texts:
        raise UsageError("--dataset_path", f"{source} has no text of {length} characters", "pass a dataset with longer texts")
    return texts
