"""Task meta-features: what the recommender knows about a task before training on it.

Version 1 (``METAFEATURES_VERSION``):

=================  =========================================================================
n_train, n_dev     examples per split (QA: questions; NER: sentences)
n_labels           classes (classification, NER tags); 1 for regression; 2 for QA (start/end)
label_entropy      Shannon entropy of the train label distribution, normalised to [0, 1]
imbalance_ratio    count of the most frequent / least frequent train label (1 = balanced)
is_pair            sentence-pair input (classification / regression)
language           declared language, else detected from the script and stopwords
eval_language      language of the dev set (differs in cross-lingual zero-shot tasks)
tokens_mean/_p95   tokens per example under the model's tokenizer (special tokens included)
unk_rate           share of word pieces that are the tokenizer's unknown token
fertility          word pieces per whitespace-separated word (vocabulary overlap: higher is worse)
model_params       parameters of the encoder
fingerprint        hash of the normalized data: the same data is recognised across runs
=================  =========================================================================

Token statistics use at most 2,000 sampled training texts, so a 10k-example task takes well
under a second.
"""

from __future__ import annotations

import math
import random
import re
import unicodedata
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from recommender.errors import DataError
from recommender.types import MetaFeatures

if TYPE_CHECKING:
    from recommender.tasks import Task

METAFEATURES_VERSION = 1
TOKEN_SAMPLE = 2000

_STOPWORDS = {
    "en": {"the", "and", "of", "to", "is", "a", "in", "that", "it", "was", "for", "with"},
    "de": {"der", "die", "und", "das", "ist", "nicht", "ich", "zu", "den", "mit", "ein", "sie"},
    "pt": {"de", "que", "não", "uma", "um", "para", "com", "os", "é", "da", "do", "em"},
    "es": {"el", "la", "que", "de", "y", "los", "las", "es", "por", "una", "con", "para"},
    "fr": {"le", "la", "les", "et", "est", "des", "une", "que", "pour", "pas", "dans", "du"},
    "id": {"yang", "dan", "di", "ini", "itu", "dengan", "untuk", "tidak", "dari", "ke", "ada", "saya"},
}


def detect_language(texts: list[str]) -> str:
    """ISO 639-1 code from the script (CJK, Hangul, kana, Devanagari, ...) and stopwords."""
    sample = " ".join(texts[:500])
    scripts: Counter[str] = Counter()
    for ch in sample:
        if not ch.isalpha():
            continue
        name = unicodedata.name(ch, "")
        if "HANGUL" in name:
            scripts["ko"] += 1
        elif "HIRAGANA" in name or "KATAKANA" in name:
            scripts["ja"] += 1
        elif "CJK" in name:
            scripts["zh"] += 1
        elif "DEVANAGARI" in name:
            scripts["hi"] += 1
        elif "CYRILLIC" in name:
            scripts["ru"] += 1
        elif "ARABIC" in name:
            scripts["ar"] += 1
        else:
            scripts["latin"] += 1
    if not scripts:
        return "und"
    script, _ = scripts.most_common(1)[0]
    if script == "zh" and scripts["ja"] > 0.05 * scripts["zh"]:
        return "ja"  # Japanese mixes kanji with kana
    if script != "latin":
        return script
    words = Counter(w.strip(".,!?;:\"'()").lower() for w in sample.split())
    scores = {lang: sum(words[w] for w in stop) for lang, stop in _STOPWORDS.items()}
    best = max(scores, key=lambda k: scores[k])
    return best if scores[best] > 0 else "und"


_CJK = "\u4e00-\u9fff\u3040-\u30ff\u3400-\u4dbf\uf900-\ufaff"
#: a word: one Chinese/Japanese character, or a run of other non-space characters
_WORD = re.compile(f"[{_CJK}]|[^\\s{_CJK}]+")


def count_words(text: str) -> int:
    """Whitespace words; each Chinese/Japanese character counts as a word (no spaces there)."""
    return len(_WORD.findall(text))


def _label_stats(task: Task) -> tuple[int, float, float]:
    if task.task_type == "regression":
        return 1, 0.0, 1.0
    if task.task_type == "extractive_qa":
        return 2, 0.0, 1.0
    if task.task_type == "token_classification":
        counts = Counter(t for tags in task.column("train", "tags") or [] for t in tags)
    else:
        counts = Counter(task.column("train", "label") or [])
    n_labels = task.num_labels
    total = sum(counts.values())
    probs = [c / total for c in counts.values()]
    entropy = -sum(p * math.log(p) for p in probs if p > 0)
    normalised = entropy / math.log(n_labels) if n_labels > 1 else 0.0
    present = [counts.get(i, 0) for i in range(n_labels)]
    smallest = min(c for c in present) if min(present) > 0 else min(c for c in present if c > 0)
    return n_labels, normalised, max(present) / smallest


def compute_metafeatures(task: Task, model: str | Path | None = None) -> MetaFeatures:
    """Meta-features of ``task`` under the tokenizer of ``model`` (default: the bundled one).

    >>> from recommender.tasks import load_task               # doctest: +SKIP
    >>> compute_metafeatures(load_task("glue_rte")).tokens_p95  # doctest: +SKIP
    """
    from recommender.models import (
        count_model_params,
        load_stats_tokenizer,
        model_display_name,
        resolve_model_path,
    )

    n_train = task.n_rows("train")
    if n_train == 0:
        raise DataError(f"{task.name}: the training split is empty; no meta-features can be computed")
    path = resolve_model_path(model)
    tokenizer = load_stats_tokenizer(path)
    texts = task.texts("train")
    if len(texts) > TOKEN_SAMPLE:
        texts = random.Random(0).sample(texts, TOKEN_SAMPLE)
    if task.task_type in ("classification", "regression") and task.has_column("train", "text_pair"):
        idx = sorted(random.Random(0).sample(range(n_train), min(n_train, TOKEN_SAMPLE)))
        first, second = task.column("train", "text") or [], task.column("train", "text_pair") or []
        lengths = tokenizer.lengths([first[i] for i in idx], [second[i] for i in idx])
    else:
        lengths = tokenizer.lengths(texts)
    pieces = tokenizer.pieces(texts)
    n_pieces = sum(len(p) for p in pieces)
    unk_id = tokenizer.unk_token_id
    n_unk = sum(1 for p in pieces for t in p if t == unk_id) if unk_id is not None else 0
    n_words = sum(count_words(t) for t in texts)
    n_labels, entropy, imbalance = _label_stats(task)
    spec = task.spec
    language = spec.language if spec.language not in ("", "und", None) else detect_language(task.texts("train"))
    eval_language = spec.eval_language if spec.eval_language not in ("", "und", None) else language
    if spec.language in ("", "und", None) and spec.eval_language in (spec.language, "und", None, ""):
        eval_language = detect_language(task.texts("dev"))
    if eval_language == "und":  # too little text to tell: no evidence of another language
        eval_language = language
    return MetaFeatures(
        version=METAFEATURES_VERSION, fingerprint=task.fingerprint, task_type=task.task_type,
        n_train=n_train, n_dev=task.n_rows("dev"), n_labels=n_labels,
        label_entropy=round(entropy, 6), imbalance_ratio=round(imbalance, 6), is_pair=spec.is_pair,
        language=language, eval_language=eval_language,
        cross_lingual=language != eval_language and "und" not in (language, eval_language),
        tokens_mean=float(np.mean(lengths)), tokens_p95=float(np.percentile(lengths, 95)),
        unk_rate=n_unk / n_pieces if n_pieces else 0.0,
        fertility=n_pieces / n_words if n_words else 0.0,
        model_params=count_model_params(path), model_name=model_display_name(path),
    )
