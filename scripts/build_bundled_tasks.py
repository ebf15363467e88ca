#!/usr/bin/env python3
"""Build the bundled task data under ``data/tasks/`` from the shared public datasets.

Usage (from the repository root)::

    python scripts/build_bundled_tasks.py [SHARED_DATA_DIR] [--out data/tasks]

``SHARED_DATA_DIR`` defaults to ``../shared/data`` relative to the repository root.
Every source folder there has a PROVENANCE.md describing its format; the readers
below follow those notes (TSV without quoting, CSV-quoted TSV, UTF-8 BOM, CRLF,
per-file labels, JSON Lines, ...).

For every task the script writes ``train.jsonl``, ``dev.jsonl`` (unless the task
reuses another task's file through a relative path), ``task.json`` and
``PROVENANCE.md``, and finally ``data/tasks/README.md``.

Rules applied everywhere (see data/tasks/README.md):

* at most 4,000 train and 1,000 dev rows per task; subsampling = shuffle with a
  fresh ``random.Random(13)`` and keep the first N rows;
* sets without an official train/dev split are shuffled with ``random.Random(13)``
  and split: dev = the first min(1,000, round(20%)) rows, train = the next rows
  (at most 4,000); exact duplicate texts are removed first so they cannot leak
  across the split (SQuAD is split by article, KLUE-NLI by premise);
* surrounding whitespace is stripped from text fields; rows whose text is empty or
  whose label is missing/unknown are dropped; ragged (wrong column count) lines are
  dropped; every drop is counted in the task's PROVENANCE.md.

``--extras`` also builds indonlu_emot and sst5, which are left out of the bundle by
default to keep data/tasks within its ~30 MB budget (SST-5 also shares SST-2's sentences).

Only the Python standard library is used and the output is byte-identical across
runs.  CoNLL-2003 is never read (its licence forbids redistribution).
"""

import argparse
import collections
import csv
import json
import os
import random
import re
import shutil
import statistics
import sys

SEED = 13
MAX_TRAIN = 4000
MAX_DEV = 1000
DEV_FRACTION = 0.2  # only for sets without an official dev split
REGRESSION_DECIMALS = 6

csv.field_size_limit(sys.maxsize)


# ----------------------------------------------------------------------------
# Generic helpers
# ----------------------------------------------------------------------------

def shuffled(items, seed=SEED):
    """Return a new list with ``items`` shuffled by a fresh random.Random(seed)."""
    items = list(items)
    random.Random(seed).shuffle(items)
    return items


def read_text(path, encoding="utf-8"):
    with open(path, encoding=encoding, newline="") as f:
        return f.read()


def split_lines(text):
    """Split on LF only (never on U+2028 etc.), strip a trailing CR, drop the
    empty string after a final newline."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def read_tsv(path, ncols, header=None, encoding="utf-8"):
    """Plain TSV without quoting.  Returns (rows, n_lines_read, n_malformed).

    ``header``: if given, the first line must equal it (after BOM removal) and is
    skipped.  Lines with a column count other than ``ncols`` are malformed."""
    lines = split_lines(read_text(path, encoding))
    if header is not None:
        first = lines.pop(0).split("\t")
        if first != header:
            raise ValueError("%s: unexpected header %r" % (path, first))
    rows, bad = [], 0
    for line in lines:
        cols = line.split("\t")
        if len(cols) != ncols:
            bad += 1
            continue
        rows.append(cols)
    return rows, len(lines), bad


def read_csv(path, ncols, header, delimiter=","):
    """CSV with standard double-quote quoting.  Returns (rows, n_read, n_malformed)."""
    with open(path, encoding="utf-8", newline="") as f:
        records = list(csv.reader(f, delimiter=delimiter))
    if header is not None:
        first = records.pop(0)
        if first != header:
            raise ValueError("%s: unexpected header %r" % (path, first))
    rows = [r for r in records if len(r) == ncols]
    return rows, len(records), len(records) - len(rows)


def read_jsonl(path):
    rows, bad, n = [], 0, 0
    for line in split_lines(read_text(path)):
        if not line.strip():
            continue
        n += 1
        try:
            rows.append(json.loads(line))
        except ValueError:
            bad += 1
    return rows, n, bad


def clean(rows, text_keys):
    """Strip text fields; drop rows with an empty text field or a missing label."""
    kept, dropped = [], 0
    for r in rows:
        for k in text_keys:
            if isinstance(r.get(k), str):
                r[k] = r[k].strip()
        if any(not isinstance(r.get(k), str) or not r[k] for k in text_keys):
            dropped += 1
            continue
        if r.get("label") is None or r.get("label") == "":
            dropped += 1
            continue
        kept.append(r)
    return kept, dropped


def dedupe(rows, key_fn):
    """Keep the first occurrence of each key.  Returns (rows, n_removed)."""
    seen, out = set(), []
    for r in rows:
        k = key_fn(r)
        if k in seen:
            continue
        seen.add(k)
        out.append(r)
    return out, len(rows) - len(out)


def rsplit_rows(lines, sep, labels):
    """Rows of ``<text><sep><label>`` lines split on the LAST ``sep`` (a label outside ``labels``
    becomes None, dropped by :func:`clean`).  Returns (rows, n_malformed)."""
    data, bad = [], 0
    for line in lines:
        if sep not in line:
            bad += 1
            continue
        text, label = line.rsplit(sep, 1)
        data.append({"text": text, "label": label if label in labels else None})
    return data, bad


def fmt(n):
    return f"{n:,}"


def reg(value):
    """Parse a regression score; rounding removes float-formatting noise such as
    1.5830000000000002 (PLUE STS-B) without changing any real value."""
    return round(float(value), REGRESSION_DECIMALS)


class Split:
    """One output split plus the bookkeeping that goes into PROVENANCE.md."""

    def __init__(self, rows, note):
        self.rows = rows
        self.note = note


def subsample(rows, cap, what, n_read=None, n_malformed=0, n_dropped=0, extra="", unit="rows",
              malformed_desc="malformed (ragged) lines dropped"):
    """Shuffle with random.Random(SEED), keep the first ``cap`` rows, and describe it."""
    parts = []
    if n_read is not None:
        parts.append("%s %s read" % (fmt(n_read), unit))
        parts.append("%s %s" % (fmt(n_malformed), malformed_desc))
        if n_dropped is not None:
            parts.append("%s %s with empty text or missing/unknown label dropped" % (fmt(n_dropped), unit))
    if extra:
        parts.append(extra)
    out = shuffled(rows)[:cap]
    parts.append("%s usable %s shuffled with random.Random(%d), first (up to) %s kept -> **%s %s**"
                 % (fmt(len(rows)), unit, SEED, fmt(cap), fmt(len(out)), unit))
    return Split(out, "%s: %s." % (what, "; ".join(parts)))


def seeded_split(rows, what, n_read, n_malformed=0, n_dropped=0, n_dupes=0, dupe_desc="text"):
    """Fixed split for sets without an official dev split."""
    mixed = shuffled(rows)
    n_dev = min(MAX_DEV, int(round(len(mixed) * DEV_FRACTION)))
    dev = mixed[:n_dev]
    rest = mixed[n_dev:]
    train = rest[:MAX_TRAIN]
    head = ["%s rows read" % fmt(n_read),
            "%s malformed lines dropped" % fmt(n_malformed),
            "%s rows with empty text or missing/unknown label dropped" % fmt(n_dropped)]
    if n_dupes:
        head.append("%s exact duplicate %s removed (first occurrence kept)" % (fmt(n_dupes), dupe_desc))
    else:
        head.append("no exact duplicate %s found" % dupe_desc)
    common = "%s: %s; the remaining %s rows were shuffled with random.Random(%d)" % (
        what, "; ".join(head), fmt(len(mixed)), SEED)
    dev_note = ("dev.jsonl = the first min(%s, round(%d%%)) = %s shuffled rows -> **%s rows**"
                % (fmt(MAX_DEV), int(DEV_FRACTION * 100), fmt(n_dev), fmt(len(dev))))
    train_note = ("train.jsonl = the %s shuffled rows after the dev rows, capped at %s -> **%s rows**"
                  % (fmt(len(rest)), fmt(MAX_TRAIN), fmt(len(train))))
    return Split(train, common + "; " + train_note + "."), Split(dev, common + "; " + dev_note + ".")


# ----------------------------------------------------------------------------
# Task description
# ----------------------------------------------------------------------------

class Task:
    def __init__(self, name, task_type, language, domain, description, sources,
                 train, dev, eval_language=None, metric=None, train_ref=None,
                 label_map=None, notes=(), licence=None, language_notes=None):
        self.name = name
        self.task_type = task_type
        self.language = language
        self.eval_language = eval_language or language
        self.domain = domain
        self.description = description
        self.sources = list(sources)
        self.train = train          # Split (None when train_ref is used)
        self.dev = dev              # Split
        self.train_ref = train_ref  # Task whose train.jsonl is reused
        self.metric = metric or {"classification": "accuracy", "regression": "pearson",
                                 "extractive_qa": "f1", "token_classification": "f1"}[task_type]
        self.label_map = label_map
        self.notes = list(notes)
        self.licence = licence
        self.language_notes = language_notes

    @property
    def train_rows(self):
        return self.train_ref.train.rows if self.train_ref else self.train.rows


SCHEMAS = {
    "classification": ("text", "text_pair", "label"),
    "regression": ("text", "text_pair", "label"),
    "extractive_qa": ("question", "context", "answers"),
    "token_classification": ("tokens", None, "tags"),
}


# ----------------------------------------------------------------------------
# Builders, one per source format
# ----------------------------------------------------------------------------

def glue_single(src, folder, label_map, splits=("train", "dev")):
    """GLUE-style single-sentence TSV with header ``sentence<TAB>label`` (SST-2 / PLUE SST-2)."""
    out = {}
    for split in splits:
        path = os.path.join(src, folder, split + ".tsv")
        rows, n, bad = read_tsv(path, 2, header=["sentence", "label"])
        data = [{"text": r[0], "label": label_map.get(r[1])} for r in rows]
        data, dropped = clean(data, ["text"])
        out[split] = (data, n, bad, dropped)
    return out


def build_glue_sst2(src):
    lm = {"0": "negative", "1": "positive"}
    d = glue_single(src, "glue_sst2", lm)
    tr, n, bad, drop = d["train"]
    train = subsample(tr, MAX_TRAIN, "train.jsonl from `glue_sst2/train.tsv` (GLUE train)", n, bad, drop)
    dv, n, bad, drop = d["dev"]
    dev = subsample(dv, MAX_DEV, "dev.jsonl from `glue_sst2/dev.tsv` (GLUE dev)", n, bad, drop)
    return Task("glue_sst2", "classification", "en", "reviews",
                "GLUE SST-2: binary sentiment of movie-review sentences and phrases (lower-cased, PTB-tokenized).",
                ["glue_sst2"], train, dev, label_map=lm,
                notes=["The GLUE SST-2 train file mixes full sentences and sub-sentence phrases; dev holds full sentences only."])


def build_plue_sst2_pt(src):
    lm = {"0": "negative", "1": "positive"}
    d = glue_single(src, "plue_sst2_pt", lm)
    tr, n, bad, drop = d["train"]
    train = subsample(tr, MAX_TRAIN, "train.jsonl from `plue_sst2_pt/train.tsv` (PLUE train)", n, bad, drop)
    dv, n, bad, drop = d["dev"]
    dev = subsample(dv, MAX_DEV, "dev.jsonl from `plue_sst2_pt/dev.tsv` (PLUE dev)", n, bad, drop)
    return Task("plue_sst2_pt", "classification", "pt", "reviews",
                "PLUE SST-2: binary sentiment of Portuguese (machine-translated) movie-review sentences and phrases.",
                ["plue_sst2_pt"], train, dev, label_map=lm,
                notes=["PLUE rows are aligned one-to-one with GLUE SST-2 and no row was dropped in either, so the same "
                       "random.Random(13) permutation selects the Portuguese translations of exactly the rows in `glue_sst2`."])


def build_glue_cola(src):
    lm = {"0": "unacceptable", "1": "acceptable"}
    splits = {}
    for split, cap in (("train", MAX_TRAIN), ("dev", MAX_DEV)):
        rows, n, bad = read_tsv(os.path.join(src, "glue_cola", split + ".tsv"), 4)
        data = [{"text": r[3], "label": lm.get(r[1])} for r in rows]
        data, drop = clean(data, ["text"])
        splits[split] = subsample(data, cap, "%s.jsonl from `glue_cola/%s.tsv` (GLUE %s)" % (split, split, split),
                                  n, bad, drop)
    return Task("glue_cola", "classification", "en", "linguistics",
                "GLUE CoLA: is an English sentence grammatically acceptable (linguistics-literature examples).",
                ["glue_cola"], splits["train"], splits["dev"], metric="mcc", label_map=lm,
                notes=["Columns used: 4 (sentence) and 2 (label); the source code and author-annotation columns were dropped.",
                       "GLUE dev = CoLA in-domain dev + out-of-domain dev; after subsampling both kinds remain mixed."])


def mrpc_rows(path, encoding):
    header = ["Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"]
    return read_tsv(path, 5, header=header, encoding=encoding)


MRPC_LABELS = {"0": "not_paraphrase", "1": "paraphrase"}


def build_glue_mrpc(src):
    splits = {}
    for split, cap in (("train", MAX_TRAIN), ("dev", MAX_DEV)):
        rows, n, bad = mrpc_rows(os.path.join(src, "glue_mrpc", split + ".tsv"), "utf-8-sig")
        data = [{"text": r[3], "text_pair": r[4], "label": MRPC_LABELS.get(r[0])} for r in rows]
        data, drop = clean(data, ["text", "text_pair"])
        splits[split] = subsample(data, cap, "%s.jsonl from `glue_mrpc/%s.tsv` (GLUE %s)" % (split, split, split),
                                  n, bad, drop)
    return Task("glue_mrpc", "classification", "en", "news",
                "GLUE MRPC: are two English news sentences paraphrases of each other.",
                ["glue_mrpc"], splits["train"], splits["dev"], label_map=MRPC_LABELS,
                notes=["Files start with a UTF-8 BOM and were read as `utf-8-sig`; TSV read without quoting "
                       "(sentences contain `\"`).", "Columns used: `#1 String` -> text, `#2 String` -> text_pair, `Quality` -> label."])


def rte_rows(path):
    return read_tsv(path, 4, header=["index", "sentence1", "sentence2", "label"])


RTE_LABELS = {"entailment": "entailment", "not_entailment": "not_entailment"}


def build_glue_rte(src):
    splits = {}
    for split, cap in (("train", MAX_TRAIN), ("dev", MAX_DEV)):
        rows, n, bad = rte_rows(os.path.join(src, "glue_rte", split + ".tsv"))
        data = [{"text": r[1], "text_pair": r[2], "label": RTE_LABELS.get(r[3])} for r in rows]
        data, drop = clean(data, ["text", "text_pair"])
        splits[split] = subsample(data, cap, "%s.jsonl from `glue_rte/%s.tsv` (GLUE %s)" % (split, split, split),
                                  n, bad, drop)
    return Task("glue_rte", "classification", "en", "mixed",
                "GLUE RTE: does an English premise (news / Wikipedia) entail the hypothesis.",
                ["glue_rte"], splits["train"], splits["dev"],
                notes=["TSV read without quoting; sentence1 -> text (premise), sentence2 -> text_pair (hypothesis)."])


STSB_HEADER = ["index", "genre", "filename", "year", "old_index", "source1", "source2",
               "sentence1", "sentence2", "score"]


def stsb_rows(path):
    rows, n, bad = read_tsv(path, 10, header=STSB_HEADER)
    data = []
    for r in rows:
        try:
            label = reg(r[9])
        except ValueError:
            label = None
        data.append({"text": r[7], "text_pair": r[8], "label": label})
    data, drop = clean(data, ["text", "text_pair"])
    return data, n, bad, drop


def build_glue_stsb(src):
    splits = {}
    for split, cap in (("train", MAX_TRAIN), ("dev", MAX_DEV)):
        data, n, bad, drop = stsb_rows(os.path.join(src, "glue_stsb", split + ".tsv"))
        splits[split] = subsample(data, cap, "%s.jsonl from `glue_stsb/%s.tsv` (GLUE %s)" % (split, split, split),
                                  n, bad, drop)
    return Task("glue_stsb", "regression", "en", "mixed",
                "GLUE STS-B: semantic similarity (0-5) of English sentence pairs from captions, news headlines and forums.",
                ["glue_stsb"], splits["train"], splits["dev"],
                notes=["Label = column `score` as a float, rounded to %d decimals (only removes float-formatting noise)."
                       % REGRESSION_DECIMALS])


# --- cross-lingual (train English GLUE, dev Portuguese PLUE) -------------------

def build_xling(src, name, en_task, pt_folder, reader):
    data, n, bad, drop = reader(src, pt_folder)
    dev = subsample(data, MAX_DEV, "dev.jsonl (Portuguese) from `%s/dev.tsv` (PLUE dev)" % pt_folder, n, bad, drop)
    desc = "Zero-shot cross-lingual %s: train on English GLUE (%s), evaluate on the Portuguese PLUE translation." % (
        en_task.name.replace("glue_", "").upper(), en_task.name)
    return Task(name, en_task.task_type, "en", en_task.domain, desc, list(en_task.sources) + [pt_folder],
                None, dev, eval_language="pt", metric=en_task.metric, train_ref=en_task,
                label_map=en_task.label_map,
                licence="train (%s): %s | dev (%s): %s" % (en_task.sources[0], source_field(src, en_task.sources[0], "License"),
                                                         pt_folder, source_field(src, pt_folder, "License")),
                language_notes=("train = English (`../%s/train.jsonl`, reused, not copied); dev = Portuguese "
                                "(machine translation, PLUE)." % en_task.name),
                notes=["PLUE dev rows are aligned one-to-one with GLUE dev rows (same order and labels) and no row was dropped, "
                       "so the same random.Random(13) shuffle selects the Portuguese translations of exactly the pairs in "
                       "`%s/dev.jsonl`." % en_task.name,
                       "PLUE uses the same raw label values as GLUE; they were mapped to the same label names as `%s`."
                       % en_task.name])


def pt_sst2(src, folder):
    lm = {"0": "negative", "1": "positive"}
    return glue_single(src, folder, lm, splits=("dev",))["dev"]


def pt_mrpc(src, folder):
    rows, n, bad = mrpc_rows(os.path.join(src, folder, "dev.tsv"), "utf-8-sig")
    data = [{"text": r[3], "text_pair": r[4], "label": MRPC_LABELS.get(r[0])} for r in rows]
    data, drop = clean(data, ["text", "text_pair"])
    return data, n, bad, drop


def pt_rte(src, folder):
    rows, n, bad = rte_rows(os.path.join(src, folder, "dev.tsv"))
    data = [{"text": r[1], "text_pair": r[2], "label": RTE_LABELS.get(r[3])} for r in rows]
    data, drop = clean(data, ["text", "text_pair"])
    return data, n, bad, drop


def pt_stsb(src, folder):
    return stsb_rows(os.path.join(src, folder, "dev.tsv"))


# --- SICK ---------------------------------------------------------------------

SICK_HEADER = ["pair_ID", "sentence_A", "sentence_B", "entailment_label", "relatedness_score",
               "entailment_AB", "entailment_BA", "sentence_A_original", "sentence_B_original",
               "sentence_A_dataset", "sentence_B_dataset", "SemEval_set"]


def build_sick(src):
    rows, n, bad = read_tsv(os.path.join(src, "sick", "SICK.txt"), 12, header=SICK_HEADER)
    by_set = collections.Counter(r[11] for r in rows)
    nli_map = {"ENTAILMENT": "entailment", "NEUTRAL": "neutral", "CONTRADICTION": "contradiction"}
    tasks = []
    for name, kind in (("sick_relatedness", "regression"), ("sick_nli", "classification")):
        parts = {"train": [], "dev": []}
        for r in rows:
            part = {"TRAIN": "train", "TRIAL": "dev", "TEST": "dev"}.get(r[11])
            if part is None:
                continue
            if kind == "regression":
                try:
                    label = reg(r[4])
                except ValueError:
                    label = None
            else:
                label = nli_map.get(r[3])
            parts[part].append({"text": r[1], "text_pair": r[2], "label": label, "_set": r[11]})
        cleaned = {}
        for part in parts:
            cleaned[part] = clean(parts[part], ["text", "text_pair"])
        train = subsample(cleaned["train"][0], MAX_TRAIN,
                          "train.jsonl from `sick/SICK.txt` rows with SemEval_set = TRAIN",
                          len(parts["train"]), 0, cleaned["train"][1])
        dev = subsample(cleaned["dev"][0], MAX_DEV,
                        "dev.jsonl from `sick/SICK.txt` rows with SemEval_set = TRIAL or TEST (pooled)",
                        len(parts["dev"]), 0, cleaned["dev"][1])
        dev_sets = collections.Counter(r["_set"] for r in dev.rows)
        for r in cleaned["train"][0] + cleaned["dev"][0]:
            del r["_set"]
        common = ["`SICK.txt` (CRLF line endings, no final newline) has %s data rows (%s); %s malformed lines dropped. "
                  "The official SemEval-2014 split column `SemEval_set` decides the split: TRAIN -> train; "
                  "TRIAL (official dev) and TEST (official test) are pooled into the dev pool, which is then subsampled "
                  "to 1,000 rows (result: %s TEST + %s TRIAL pairs). Train (TRAIN) and dev (TRIAL/TEST) are "
                  "disjoint official splits." % (fmt(n), ", ".join("%s %s" % (k, fmt(v)) for k, v in sorted(by_set.items())),
                                                     fmt(bad), fmt(dev_sets["TEST"]), fmt(dev_sets["TRIAL"])),
                  "sentence_A -> text, sentence_B -> text_pair."]
        if kind == "regression":
            t = Task(name, "regression", "en", "captions",
                     "SICK relatedness: semantic relatedness score (1-5) of English caption-derived sentence pairs.",
                     ["sick"], train, dev,
                     notes=common + ["Label = `relatedness_score` (float 1-5)."])
        else:
            t = Task(name, "classification", "en", "captions",
                     "SICK NLI: 3-class entailment (entailment / neutral / contradiction) between English caption-derived sentences.",
                     ["sick"], train, dev, label_map=nli_map,
                     notes=common + ["Label = `entailment_label`, lower-cased."])
        tasks.append(t)
    return tasks


# --- SQuAD --------------------------------------------------------------------

def build_squad(src):
    path = os.path.join(src, "squad_v1.1", "dev-v1.1.json")
    with open(path, encoding="utf-8") as f:
        data = json.load(f)["data"]
    n_q = sum(len(p["qas"]) for a in data for p in a["paragraphs"])
    order = shuffled(range(len(data)))
    parts = {"train": [], "dev": []}
    counts = {"train": 0, "dev": 0}
    titles = {"train": [], "dev": []}
    unused = []
    bad = 0
    for i in order:
        art = data[i]
        rows = []
        for para in art["paragraphs"]:
            ctx = para["context"]
            for qa in para["qas"]:
                texts = [a["text"] for a in qa["answers"]]
                starts = [a["answer_start"] for a in qa["answers"]]
                q = qa["question"].strip()
                ok = q and texts and all(ctx[s:s + len(t)] == t for s, t in zip(starts, texts))
                if not ok:
                    bad += 1
                    continue
                rows.append({"id": qa["id"], "title": art["title"], "question": q, "context": ctx,
                             "answers": {"text": texts, "answer_start": starts}})
        for part, cap in (("dev", MAX_DEV), ("train", MAX_TRAIN)):
            if counts[part] + len(rows) <= cap:
                parts[part].extend(rows)
                counts[part] += len(rows)
                titles[part].append("%s (%d)" % (art["title"], len(rows)))
                break
        else:
            unused.append("%s (%d)" % (art["title"], len(rows)))
    rule = ("articles shuffled with random.Random(%d); walking that order, each whole article goes to dev if dev stays "
            "<= %s questions, else to train if train stays <= %s questions, else it is not used"
            % (SEED, fmt(MAX_DEV), fmt(MAX_TRAIN)))
    train = Split(parts["train"], "train.jsonl from `squad_v1.1/dev-v1.1.json` (the official SQuAD v1.1 **dev** set; "
                  "the train set is not available): %s; %d articles -> **%s questions**: %s."
                  % (rule, len(titles["train"]), fmt(len(parts["train"])), ", ".join(titles["train"])))
    dev = Split(parts["dev"], "dev.jsonl from the same file, same rule: %d articles -> **%s questions**: %s."
                % (len(titles["dev"]), fmt(len(parts["dev"])), ", ".join(titles["dev"])))
    return Task("squad", "extractive_qa", "en", "wikipedia",
                "SQuAD v1.1: extractive question answering over English Wikipedia paragraphs (split by article).",
                ["squad_v1.1"], train, dev,
                notes=["Source: %d articles, %s questions. Train and dev are disjoint by article (title)." % (len(data), fmt(n_q)),
                       "Unused articles (%d): %s." % (len(unused), ", ".join(unused)),
                       "Every gold answer is kept (train and dev), in source order, including duplicates; "
                       "questions whose answers do not match their offsets would be dropped: %d dropped." % bad,
                       "Question text stripped of surrounding whitespace; contexts and answers are unchanged "
                       "(so every answer_start still points at its answer text).",
                       "Rows keep the source order within each article."])


# --- NER ----------------------------------------------------------------------

TAG_RE = re.compile(r"^(O|[BI]-\S+)$")


def read_conll(path, prefix=None):
    """Token<TAB>tag per line; any whitespace-only line ends a sentence.

    Returns (sentences, n_sentences_read, n_malformed_sentences).  A malformed line
    drops its whole sentence (dropping one token would misalign the sentence)."""
    sents, toks, tags, broken = [], [], [], False
    n_read = n_bad = 0

    def flush():
        nonlocal toks, tags, broken, n_read, n_bad
        if toks or broken:
            n_read += 1
            if broken or not toks:
                n_bad += 1
            else:
                sents.append({"tokens": toks, "tags": tags})
        toks, tags, broken = [], [], False

    for line in split_lines(read_text(path)):
        if not line.strip():
            flush()
            continue
        cols = line.split("\t")
        if len(cols) != 2 or not TAG_RE.match(cols[1]):
            broken = True
            continue
        tok = cols[0]
        if prefix is not None:
            if not tok.startswith(prefix):
                broken = True
                continue
            tok = tok[len(prefix):]
        if tok == "":
            broken = True
            continue
        toks.append(tok)
        tags.append(cols[1])
    flush()
    return sents, n_read, n_bad


def iob2_violations(sents):
    n = 0
    for s in sents:
        prev = "O"
        for t in s["tags"]:
            if t.startswith("I-") and prev[2:] != t[2:]:
                n += 1
            prev = t
    return n


def ner_split(path, cap, what, prefix=None):
    sents, n, bad = read_conll(path, prefix)
    split = subsample(sents, cap, what, n, bad, None, unit="sentences",
                      malformed_desc="malformed sentences dropped (wrong column count, non-IOB tag, missing "
                                     "language prefix or empty token)")
    return split, iob2_violations(split.rows)


def build_wnut17(src):
    base = os.path.join(src, "wnut17")
    train, v1 = ner_split(os.path.join(base, "wnut17train.conll"), MAX_TRAIN,
                          "train.jsonl from `wnut17/wnut17train.conll` (official train, tweets)")
    dev, v2 = ner_split(os.path.join(base, "emerging.dev.conll"), MAX_DEV,
                        "dev.jsonl from `wnut17/emerging.dev.conll` (official dev, YouTube/Reddit/StackOverflow/Twitter)")
    return Task("wnut17", "token_classification", "en", "social_media",
                "WNUT-17: emerging and rare entity NER (6 types, IOB2) in noisy English user-generated text.",
                ["wnut17"], train, dev,
                notes=["Sentence separators: empty lines and lines holding a single TAB (train) are both treated as separators.",
                       "Tags kept exactly as in the source (lower-case entity types, e.g. `B-creative-work`).",
                       "IOB2 violations (I- tag not continuing the same type) in the output: %d." % (v1 + v2),
                       "The test set (`emerging.test.annotated`) is not bundled."])


def build_wikiann(src, lang, folder, train_file, dev_file, prefix, lang_name):
    base = os.path.join(src, folder)
    train, v1 = ner_split(os.path.join(base, train_file), MAX_TRAIN,
                          "train.jsonl from `%s/%s` (official train)" % (folder, train_file), prefix)
    dev, v2 = ner_split(os.path.join(base, dev_file), MAX_DEV,
                        "dev.jsonl from `%s/%s` (official dev)" % (folder, dev_file), prefix)
    notes = ["Tokens: `%s:` prefix stripped (first %d characters)." % (lang, len(prefix))] if prefix else \
        ["Tokens used as is (the XTREME files carry no language prefix)."]
    notes.append("IOB2 violations (I- tag not continuing the same type) in the output: %d." % (v1 + v2))
    notes.append("WikiANN is silver-standard (automatically projected) annotation, so expect label noise; "
                 "sentences are mostly short title-like spans.")
    if lang == "id":
        alih = sum(1 for s in train.rows if s["tokens"][0] == "ALIH")
        notes.append("Kept as in the source: %s of the %s train sentences start with the redirect marker token `ALIH` (tagged O)."
                     % (fmt(alih), fmt(len(train.rows))))
    return Task("wikiann_" + lang, "token_classification", lang, "wikipedia",
                "WikiANN (PAN-X) %s NER: PER / LOC / ORG in IOB2 over Wikipedia sentences (silver standard)." % lang_name,
                [folder], train, dev, notes=notes)


# --- JSON-Lines classification (SciBERT copies) -------------------------------

def build_scibert_jsonl(src, name, folder, domain, description, notes=()):
    splits = {}
    for split, cap in (("train", MAX_TRAIN), ("dev", MAX_DEV)):
        raw, n, bad = read_jsonl(os.path.join(src, folder, split + ".txt"))
        data = [{"text": r.get("text"), "label": r.get("label")} for r in raw]
        data, drop = clean(data, ["text"])
        splits[split] = subsample(data, cap, "%s.jsonl from `%s/%s.txt` (official %s)" % (split, folder, split, split),
                                  n, bad, drop)
    return Task(name, "classification", "en", domain, description, [folder], splits["train"], splits["dev"],
                notes=["JSON Lines; fields `text` and `label` used, `metadata` dropped; label names kept as in the source."]
                + list(notes))


def build_acl_arc(src):
    folder = "acl_arc_citation_intent"
    splits = {}
    raw, n, bad = read_jsonl(os.path.join(src, folder, "train.txt"))
    data, drop = clean([{"text": r.get("text"), "label": r.get("label")} for r in raw], ["text"])
    splits["train"] = subsample(data, MAX_TRAIN, "train.jsonl from `%s/train.txt` (official train)" % folder, n, bad, drop)
    pooled, n_all, bad_all, drop_all, counts = [], 0, 0, 0, []
    for fname in ("dev.txt", "test.txt"):
        raw, n, bad = read_jsonl(os.path.join(src, folder, fname))
        data, drop = clean([{"text": r.get("text"), "label": r.get("label")} for r in raw], ["text"])
        pooled += data
        n_all, bad_all, drop_all = n_all + n, bad_all + bad, drop_all + drop
        counts.append(fmt(n))
    splits["dev"] = subsample(pooled, MAX_DEV, "dev.jsonl from `%s/dev.txt` (official dev, %s rows) + `test.txt` "
                              "(official test, %s rows), pooled" % (folder, counts[0], counts[1]), n_all, bad_all, drop_all)
    return Task("citation_intent_acl_arc", "classification", "en", "science",
                "ACL-ARC citation intent: why a computational-linguistics paper cites another (6 classes: background, "
                "uses, compare/contrast, motivation, extends, future).",
                [folder], splits["train"], splits["dev"],
                notes=["JSON Lines; fields `text` and `label` used, `metadata` dropped; label names kept as in the source.",
                       "The official dev split has only 114 citations, so dev and test (both labelled) were pooled into "
                       "a 253-citation dev set to make evaluation less noisy."])


# --- other sources -------------------------------------------------------------

def build_ag_news(src):
    splits = {}
    for split, fname, cap, what in (("train", "dev.tsv", MAX_TRAIN, "ALPS dev, a class-balanced held-out part of AG News"),
                                    ("dev", "test.tsv", MAX_DEV, "ALPS test = the official AG News test set")):
        rows, n, bad = read_csv(os.path.join(src, "ag_news", fname), 2, None, delimiter="\t")
        data = [{"text": r[0], "label": r[1]} for r in rows]
        data, drop = clean(data, ["text"])
        splits[split] = subsample(data, cap, "%s.jsonl from `ag_news/%s` (%s)" % (split, fname, what), n, bad, drop)
    return Task("ag_news", "classification", "en", "news",
                "AG News: 4-way topic (World / Sports / Business / Sci/Tech) of English news article descriptions.",
                ["ag_news"], splits["train"], splits["dev"],
                notes=["Read as CSV with TAB delimiter and `\"` quoting (fields with quotes are CSV-quoted).",
                       "Only the article description is available (titles were dropped upstream); HTML entities such "
                       "as `&lt;` and backslash sequences such as `\\$` from the original corpus are kept as is.",
                       "The official 120k train set is not available in shared data, hence ALPS dev.tsv is used as training data."])


def build_financial_phrasebank(src):
    path = os.path.join(src, "financial_phrasebank", "Sentences_66Agree.txt")
    lines = split_lines(read_text(path))
    data, bad = rsplit_rows(lines, "@", ("positive", "negative", "neutral"))
    data, drop = clean(data, ["text"])
    data, dup = dedupe(data, lambda r: r["text"])
    train, dev = seeded_split(data, "`financial_phrasebank/Sentences_66Agree.txt` (no official split)",
                              len(lines), bad, drop, dup, "sentences")
    return Task("financial_phrasebank", "classification", "en", "finance",
                "Financial PhraseBank (>=66% annotator agreement): sentiment of English financial-news sentences.",
                ["financial_phrasebank"], train, dev,
                notes=["Each line is `<sentence>@<label>`, split on the LAST `@`.",
                       "Encoding: the shared copy was already re-encoded from ISO-8859-1 to UTF-8 (see the source "
                       "PROVENANCE.md); it was read as strict UTF-8. Mojibake present in the original release (e.g. `Â`) is kept.",
                       "The 66Agree file was chosen (4,217 sentences, more data than 75Agree, less noise than 50Agree)."])


def build_tweeteval(src, name, folder, description, domain="twitter"):
    base = os.path.join(src, folder)
    mapping = {}
    for line in split_lines(read_text(os.path.join(base, "mapping.txt"))):
        cols = [c for c in line.split("\t") if c.strip()]  # emoji: id, emoji, _name_, and a trailing TAB
        mapping[cols[0]] = cols[-1].strip("_")
    splits = {}
    for split, fname, cap in (("train", "train", MAX_TRAIN), ("dev", "val", MAX_DEV)):
        texts = split_lines(read_text(os.path.join(base, fname + "_text.txt")))
        labels = split_lines(read_text(os.path.join(base, fname + "_labels.txt")))
        if len(texts) != len(labels):
            raise ValueError("%s: %d texts vs %d labels" % (folder, len(texts), len(labels)))
        data = [{"text": t, "label": mapping.get(l.strip())} for t, l in zip(texts, labels)]
        data, drop = clean(data, ["text"])
        splits[split] = subsample(data, cap, "%s.jsonl from `%s/%s_text.txt` + `%s_labels.txt` (official %s)"
                                  % (split, folder, fname, fname, fname), len(texts), 0, drop)
    return Task(name, "classification", "en", domain, description, [folder], splits["train"], splits["dev"],
                label_map=mapping,
                notes=["Text and label files are aligned by line number; label ids mapped to names with `mapping.txt`.",
                       "The official test split is not bundled."])


def build_germeval(src):
    base = os.path.join(src, "germeval2018")
    splits = {}
    for split, fname, cap, what in (("train", "germeval2018.training.txt", MAX_TRAIN, "official training set"),
                                    ("dev", "germeval2018.test.txt", MAX_DEV, "official test set, used as dev: there is no official dev split")):
        rows, n, bad = read_tsv(os.path.join(base, fname), 3)
        data = [{"text": r[0], "label": r[1] if r[1] in ("OFFENSE", "OTHER") else None} for r in rows]
        data, drop = clean(data, ["text"])
        splits[split] = subsample(data, cap, "%s.jsonl from `germeval2018/%s` (%s)" % (split, fname, what), n, bad, drop)
    return Task("germeval2018_offense", "classification", "de", "twitter",
                "GermEval 2018 task 1: is a German tweet offensive (OFFENSE) or not (OTHER).",
                ["germeval2018"], splits["train"], splits["dev"],
                notes=["Column 2 (coarse task-1 label) used; the fine-grained task-2 column was dropped.",
                       "Line breaks inside tweets are encoded as `|LBR|` in the source and kept as is."])


def build_indonlu_smsa(src):
    base = os.path.join(src, "indonlu_smsa")
    splits = {}
    for split, fname, cap in (("train", "train_preprocess.tsv", MAX_TRAIN), ("dev", "valid_preprocess.tsv", MAX_DEV)):
        rows, n, bad = read_tsv(os.path.join(base, fname), 2)
        data = [{"text": r[0], "label": r[1] if r[1] in ("positive", "neutral", "negative") else None} for r in rows]
        data, drop = clean(data, ["text"])
        splits[split] = subsample(data, cap, "%s.jsonl from `indonlu_smsa/%s` (official %s)"
                                  % (split, fname, "train" if split == "train" else "valid"), n, bad, drop)
    return Task("indonlu_smsa", "classification", "id", "reviews",
                "IndoNLU SmSA: 3-class sentiment of Indonesian reviews and comments (lower-cased, tokenized).",
                ["indonlu_smsa"], splits["train"], splits["dev"],
                notes=["The official test split is not bundled."])


def build_indonlu_wrete(src):
    base = os.path.join(src, "indonlu_wrete")
    header = ["sent_A", "sent_B", "category", "label"]
    labels = ("Entail_or_Paraphrase", "NotEntail")

    def load(fname):
        rows, n, bad = read_csv(os.path.join(base, fname), 4, header)
        data = [{"text": r[0], "text_pair": r[1], "label": r[3] if r[3] in labels else None} for r in rows]
        data, drop = clean(data, ["text", "text_pair"])
        return data, n, bad, drop

    tr, n, bad, drop = load("train_preprocess.csv")
    train = subsample(tr, MAX_TRAIN, "train.jsonl from `indonlu_wrete/train_preprocess.csv` (official train)", n, bad, drop)
    va, n1, bad1, drop1 = load("valid_preprocess.csv")
    te, n2, bad2, drop2 = load("test_preprocess.csv")
    dev = subsample(va + te, MAX_DEV,
                    "dev.jsonl from `indonlu_wrete/valid_preprocess.csv` (official valid, %s rows) + "
                    "`test_preprocess.csv` (official test, %s rows), pooled" % (fmt(n1), fmt(n2)),
                    n1 + n2, bad1 + bad2, drop1 + drop2)
    return Task("indonlu_wrete", "classification", "id", "wikipedia",
                "IndoNLU WReTE: does one Indonesian Wikipedia revision sentence entail/paraphrase the other.",
                ["indonlu_wrete"], train, dev,
                notes=["Read as quoted CSV; sent_A -> text, sent_B -> text_pair; the `category` column "
                       "(revision comment) was dropped.",
                       "The official valid split has only 50 pairs, so valid and test (both labelled) were pooled into "
                       "a 150-pair dev set to make evaluation less noisy. The train set is tiny (300 pairs)."])


def build_indonlu_emot(src):
    base = os.path.join(src, "indonlu_emot")
    labels = ("anger", "fear", "happy", "love", "sadness")
    splits = {}
    for split, fname, cap in (("train", "train_preprocess.csv", MAX_TRAIN), ("dev", "valid_preprocess.csv", MAX_DEV)):
        rows, n, bad = read_csv(os.path.join(base, fname), 2, ["label", "tweet"])
        data = [{"text": r[1], "label": r[0] if r[0] in labels else None} for r in rows]
        data, drop = clean(data, ["text"])
        splits[split] = subsample(data, cap, "%s.jsonl from `indonlu_emot/%s` (official %s)"
                                  % (split, fname, "train" if split == "train" else "valid"), n, bad, drop)
    return Task("indonlu_emot", "classification", "id", "twitter",
                "IndoNLU EmoT: 5-class emotion (anger / fear / happy / love / sadness) of Indonesian tweets.",
                ["indonlu_emot"], splits["train"], splits["dev"],
                notes=["Read as quoted CSV (header `label,tweet`); user names are anonymised as `[USERNAME]` upstream.",
                       "The official test split is not bundled."])


def build_emotion(src):
    labels = ("sadness", "joy", "love", "anger", "fear", "surprise")
    splits = {}
    for split, fname, cap in (("train", "train.txt", MAX_TRAIN), ("dev", "val.txt", MAX_DEV)):
        lines = split_lines(read_text(os.path.join(src, "emotion", fname)))
        if lines[0] != "text;label_name":
            raise ValueError("emotion/%s: unexpected header %r" % (fname, lines[0]))
        lines = lines[1:]
        data, bad = rsplit_rows(lines, ";", labels)
        data, drop = clean(data, ["text"])
        splits[split] = subsample(data, cap, "%s.jsonl from `emotion/%s` (official %s)"
                                  % (split, fname, "train" if split == "train" else "validation"), len(lines), bad, drop)
    return Task("emotion", "classification", "en", "twitter",
                "CARER emotion (dair-ai): 6-class emotion (sadness / joy / love / anger / fear / surprise) of English tweets.",
                ["emotion"], splits["train"], splits["dev"],
                notes=["Header `text;label_name` skipped; each line split on the LAST `;`. Texts are lower-cased "
                       "with punctuation stripped upstream.",
                       "The official test split is not bundled."])


def build_mpqa(src):
    base = os.path.join(src, "mpqa")
    data, n = [], 0
    for fname, label in (("mpqa.pos", "positive"), ("mpqa.neg", "negative")):
        lines = split_lines(read_text(os.path.join(base, fname)))
        n += len(lines)
        data.extend({"text": line, "label": label} for line in lines)
    data, drop = clean(data, ["text"])
    data, dup = dedupe(data, lambda r: r["text"])
    train, dev = seeded_split(data, "`mpqa/mpqa.pos` + `mpqa/mpqa.neg` (no official split)", n, 0, drop, dup, "phrases")
    return Task("mpqa", "classification", "en", "news",
                "MPQA opinion polarity (SentEval version): positive or negative polarity of short English opinion phrases from news.",
                ["mpqa"], train, dev,
                notes=["One lower-cased phrase per line; the label is the file (`mpqa.pos` positive, `mpqa.neg` negative).",
                       "Exact duplicate phrases are removed before the split (the first occurrence is kept, positive "
                       "file first), so no phrase is in both train and dev."])


def build_sentiment_csv(src, name, folder, fname, domain, description):
    lm = {"0": "negative", "1": "positive"}
    rows, n, bad = read_csv(os.path.join(src, folder, fname), 2, ["label", "review"])
    data = [{"text": r[1], "label": lm.get(r[0])} for r in rows]
    data, drop = clean(data, ["text"])
    data, dup = dedupe(data, lambda r: r["text"])
    train, dev = seeded_split(data, "`%s/%s` (no official split; rows are grouped by label)" % (folder, fname),
                              n, bad, drop, dup, "reviews")
    return Task(name, "classification", "zh", domain, description, [folder], train, dev, label_map=lm,
                notes=["Read as quoted CSV (header `label,review`)."])


def build_jsts(src):
    base = os.path.join(src, "jglue_jsts")
    splits = {}
    for split, fname, cap in (("train", "train-v1.3.json", MAX_TRAIN), ("dev", "valid-v1.3.json", MAX_DEV)):
        raw, n, bad = read_jsonl(os.path.join(base, fname))
        data = []
        for r in raw:
            try:
                label = reg(r["label"])
            except (KeyError, TypeError, ValueError):
                label = None
            data.append({"text": r.get("sentence1"), "text_pair": r.get("sentence2"), "label": label})
        data, drop = clean(data, ["text", "text_pair"])
        splits[split] = subsample(data, cap, "%s.jsonl from `jglue_jsts/%s` (official %s)"
                                  % (split, fname, "train" if split == "train" else "valid"), n, bad, drop)
    return Task("jglue_jsts", "regression", "ja", "captions",
                "JGLUE JSTS: semantic similarity (0-5) of Japanese image-caption sentence pairs.",
                ["jglue_jsts"], splits["train"], splits["dev"],
                notes=["JSON Lines (despite `.json`); sentence1 -> text, sentence2 -> text_pair, label -> label (float).",
                       "The labelled v1.3 test split is not bundled."])


def build_klue_nli(src):
    path = os.path.join(src, "klue_nli", "klue-nli-v1.1_dev.json")
    with open(path, encoding="utf-8") as f:
        raw = json.load(f)
    labels = ("entailment", "neutral", "contradiction")
    data = [{"text": r.get("premise"), "text_pair": r.get("hypothesis"),
             "label": r.get("gold_label") if r.get("gold_label") in labels else None} for r in raw]
    data, drop = clean(data, ["text", "text_pair"])
    data, dup = dedupe(data, lambda r: (r["text"], r["text_pair"]))
    # Each premise has three hypotheses (one per label): split by premise so that no
    # premise is shared between train and dev.
    groups = collections.OrderedDict()
    for r in data:
        groups.setdefault(r["text"], []).append(r)
    keys = shuffled(list(groups))
    n_dev_groups = int(round(len(keys) * DEV_FRACTION))
    dev_rows = [r for k in keys[:n_dev_groups] for r in groups[k]][:MAX_DEV]
    train_rows = [r for k in keys[n_dev_groups:] for r in groups[k]][:MAX_TRAIN]
    common = ("`klue_nli/klue-nli-v1.1_dev.json` (the official KLUE-NLI **dev** set; train is not available): "
              "%s pairs read; %s dropped (empty text / unknown label); %s exact duplicate pairs removed; "
              "the %s pairs share %s distinct premises (3 hypotheses each), so the split is BY PREMISE: "
              "premises shuffled with random.Random(%d), the first round(%d%%) = %s premises go to dev, the rest to train"
              % (fmt(len(raw)), fmt(drop), fmt(dup), fmt(len(data)), fmt(len(keys)), SEED,
                 int(DEV_FRACTION * 100), fmt(n_dev_groups)))
    train = Split(train_rows, "train.jsonl from %s -> **%s pairs**." % (common, fmt(len(train_rows))))
    dev = Split(dev_rows, "dev.jsonl from the same split -> **%s pairs**." % fmt(len(dev_rows)))
    return Task("klue_nli", "classification", "ko", "mixed",
                "KLUE-NLI: 3-class NLI over Korean premise/hypothesis pairs (Wikinews, Wikipedia, policy news, reviews, ...).",
                ["klue_nli"], train, dev,
                notes=["premise -> text, hypothesis -> text_pair, gold_label -> label; the five annotator labels were dropped."])


def build_sst5(src):
    base = os.path.join(src, "sst5")
    lm = {"0": "very negative", "1": "negative", "2": "neutral", "3": "positive", "4": "very positive"}
    splits = {}
    for split, fname, cap in (("train", "stsa.fine.train", MAX_TRAIN), ("dev", "stsa.fine.dev", MAX_DEV)):
        lines = split_lines(read_text(os.path.join(base, fname)))
        data, bad = [], 0
        for line in lines:
            parts = line.split(" ", 1)
            if len(parts) != 2:
                bad += 1
                continue
            data.append({"text": parts[1], "label": lm.get(parts[0])})
        data, drop = clean(data, ["text"])
        splits[split] = subsample(data, cap, "%s.jsonl from `sst5/%s` (official sentence-level %s)"
                                  % (split, fname, split), len(lines), bad, drop)
    return Task("sst5", "classification", "en", "reviews",
                "SST-5: fine-grained 5-class sentiment of English movie-review sentences (lower-cased, tokenized).",
                ["sst5"], splits["train"], splits["dev"], label_map=lm,
                notes=["Each line is `<label 0-4><space><sentence>`; ids mapped to names 0 very negative ... 4 very positive.",
                       "The official test split is not bundled."])


# ----------------------------------------------------------------------------
# Output
# ----------------------------------------------------------------------------

_LINE_BREAKS = {"\u2028": "\\u2028", "\u2029": "\\u2029", "\u0085": "\\u0085"}


def dumps_line(obj):
    """One JSON Lines record.  Unicode line separators are escaped so that tools
    splitting on them (str.splitlines) still see one record per line."""
    s = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))  # compact: keeps the bundle small
    for ch, esc in _LINE_BREAKS.items():
        s = s.replace(ch, esc)
    return s + "\n"


def write_jsonl(path, rows):
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for r in rows:
            f.write(dumps_line(r))


def source_fields(src, folder):
    fields = {}
    with open(os.path.join(src, folder, "PROVENANCE.md"), encoding="utf-8") as f:
        for line in f:
            m = re.match(r"^\| ([^|]+?) \| (.*) \|\s*$", line)
            if m and m.group(1) not in fields:
                fields[m.group(1)] = m.group(2)
    return fields


def source_field(src, folder, key):
    return source_fields(src, folder).get(key, "not stated")


def label_names(task):
    if task.task_type == "classification":
        labels = {r["label"] for r in task.train_rows} | {r["label"] for r in task.dev.rows}
        return sorted(labels)
    if task.task_type == "token_classification":
        tags = {t for r in task.train_rows for t in r["tags"]} | {t for r in task.dev.rows for t in r["tags"]}
        return sorted(tags)
    return None


def task_spec(task, src):
    text_col, pair_col, label_col = SCHEMAS[task.task_type]
    if task.task_type in ("classification", "regression"):
        pair_col = "text_pair" if any("text_pair" in r for r in task.dev.rows) else None
    if task.licence:
        licence = task.licence
    elif len(task.sources) == 1:
        licence = source_field(src, task.sources[0], "License")
    else:
        licence = " | ".join("%s: %s" % (s, source_field(src, s, "License")) for s in task.sources)
    return collections.OrderedDict([
        ("name", task.name),
        ("task_type", task.task_type),
        ("metric", OFFICIAL_METRICS[task.name][0]),
        *([("positive_label", OFFICIAL_METRICS[task.name][1])] if OFFICIAL_METRICS[task.name][1] else []),
        ("metric_reason", OFFICIAL_METRICS[task.name][2]),
        ("language", task.language),
        ("eval_language", task.eval_language),
        ("domain", task.domain),
        ("description", task.description),
        ("source", ", ".join(task.sources)),
        ("train_file", "../%s/train.jsonl" % task.train_ref.name if task.train_ref else "train.jsonl"),
        ("dev_file", "dev.jsonl"),
        ("text_col", text_col),
        ("text_pair_col", pair_col),
        ("label_col", label_col),
        ("label_names", label_names(task)),
        ("n_train", len(task.train_rows)),
        ("n_dev", len(task.dev.rows)),
        ("license", licence),
    ])


def label_table(task):
    """Markdown table of label / tag counts (classification, NER) or score stats."""
    if task.task_type == "classification":
        tr = collections.Counter(r["label"] for r in task.train_rows)
        dv = collections.Counter(r["label"] for r in task.dev.rows)
        lines = ["| label | train | dev |", "| --- | --- | --- |"]
        for lab in sorted(set(tr) | set(dv)):
            lines.append("| %s | %s | %s |" % (lab, fmt(tr[lab]), fmt(dv[lab])))
        return "\n".join(lines)
    if task.task_type == "token_classification":
        tr = collections.Counter(t for r in task.train_rows for t in r["tags"])
        dv = collections.Counter(t for r in task.dev.rows for t in r["tags"])
        lines = ["| tag | train tokens | dev tokens |", "| --- | --- | --- |"]
        for lab in sorted(set(tr) | set(dv)):
            lines.append("| %s | %s | %s |" % (lab, fmt(tr[lab]), fmt(dv[lab])))
        return "\n".join(lines)
    if task.task_type == "regression":
        lines = ["| split | min | max | mean |", "| --- | --- | --- | --- |"]
        for name, rows in (("train", task.train_rows), ("dev", task.dev.rows)):
            vals = [r["label"] for r in rows]
            lines.append("| %s | %g | %g | %.3f |" % (name, min(vals), max(vals), statistics.mean(vals)))
        return "\n".join(lines)
    lines = ["| split | questions | articles | paragraphs | answers per question (mean) |",
             "| --- | --- | --- | --- | --- |"]
    for name, rows in (("train", task.train_rows), ("dev", task.dev.rows)):
        lines.append("| %s | %s | %s | %s | %.2f |" % (
            name, fmt(len(rows)), fmt(len({r["title"] for r in rows})), fmt(len({r["context"] for r in rows})),
            statistics.mean(len(r["answers"]["text"]) for r in rows)))
    return "\n".join(lines)


def provenance_md(task, src, spec):
    out = ["# %s" % task.name, "", task.description, "",
           "Generated by `scripts/build_bundled_tasks.py` (deterministic; seed %d). Do not edit by hand." % SEED, ""]
    out.append("## Source")
    out.append("")
    for folder in task.sources:
        f = source_fields(src, folder)
        out.append("- Folder `shared/data/%s/` (its PROVENANCE.md gives the upstream repository, commit and blob ids)." % folder)
        out.append("  - Dataset: %s" % f.get("Original dataset / home", "not stated"))
        out.append("  - Citation: %s" % f.get("Citation", "not stated"))
        out.append("  - Licence: %s" % f.get("License", "not stated"))
    out.append("")
    out.append("## What was taken")
    out.append("")
    if task.train_ref:
        out.append("- train: **not copied**; `task.json` points at `../%s/train.jsonl` (%s rows; see that task's "
                   "PROVENANCE.md for how it was built)." % (task.train_ref.name, fmt(len(task.train_rows))))
    else:
        out.append("- %s" % task.train.note)
    out.append("- %s" % task.dev.note)
    for note in task.notes:
        out.append("- %s" % note)
    if task.label_map:
        out.append("- Label mapping (source value -> label name): %s." %
                   ", ".join("`%s` -> `%s`" % (k, v) for k, v in task.label_map.items()))
    if task.task_type in ("classification", "regression"):
        out.append("- Text fields were stripped of surrounding whitespace; nothing else in the text was changed.")
    elif task.task_type == "token_classification":
        out.append("- Tokens and tags are otherwise unchanged; tags are IOB2 strings.")
    out.append("- Output: UTF-8 JSON Lines, one object per line (`ensure_ascii=False`, compact separators; "
               "U+2028/U+2029/U+0085 escaped).")
    out.append("")
    out.append("## Languages")
    out.append("")
    out.append("- " + (task.language_notes or "train and dev are both `%s`." % task.language))
    out.append("")
    out.append("## Result")
    out.append("")
    out.append("n_train = %s, n_dev = %s." % (fmt(spec["n_train"]), fmt(spec["n_dev"])))
    out.append("")
    out.append(label_table(task))
    out.append("")
    return "\n".join(out)


README_HEAD = """# Bundled tasks

Small, real, public datasets bundled with the recommender, one folder per task. Each folder has
`task.json` (declarative spec), `train.jsonl`, `dev.jsonl` and `PROVENANCE.md` (source, citation,
licence, exactly what was taken, split and subsampling rule, row counts, cleaning). The cross-lingual
`xling_*` tasks reuse the English GLUE train file via a relative `train_file` path and ship only a
Portuguese `dev.jsonl`.

Regenerate everything (deterministic, byte-identical output; stdlib only):

    python scripts/build_bundled_tasks.py            # reads ../shared/data by default
    python scripts/build_bundled_tasks.py /path/to/shared/data

Rules: at most {max_train} train and {max_dev} dev rows per task (shuffle with `random.Random({seed})`,
keep the first N); sets without an official dev split are shuffled with the same seed and split
(dev = min({max_dev}, 20%)); rows with empty text or missing labels and malformed lines are dropped and
counted in each PROVENANCE.md.

Schemas: classification `{{"text", ["text_pair",] "label": str}}`; regression `{{"text", ["text_pair",] "label": float}}`;
extractive_qa (SQuAD v1.1 style) `{{"id", "title", "question", "context", "answers": {{"text": [...], "answer_start": [...]}}}}`;
token_classification `{{"tokens": [...], "tags": [...]}}` (IOB2).

| name | type | language (train -> dev) | domain | n_train | n_dev | metric | licence |
| --- | --- | --- | --- | --- | --- | --- | --- |
"""

README_TAIL = """
## Licences and what was not bundled

- **CoNLL-2003 (`conll2003`) is not bundled and must never be copied here**: its text is Reuters RCV1,
  whose licence forbids redistribution. Use it only for local tests and benchmarks from shared data.
- Non-commercial licences: `sick_relatedness`, `sick_nli` (CC BY-NC-SA 3.0), `financial_phrasebank`
  (CC BY-NC-SA 3.0) and `ag_news` (AG corpus: non-commercial research use). `glue_mrpc` and the MRPC
  part of `xling_mrpc_en_pt` fall under the Microsoft Research Paraphrase Corpus licence (research use).
  PLUE files (`plue_sst2_pt`, `xling_*` dev sets) come from a GPL-3.0 repository.
- Licence not stated by the source: `glue_sst2`, `glue_cola`, `glue_rte`, `chemprot`, `scicite`,
  `sciie_relation`, `citation_intent_acl_arc`, `emotion` (educational and research use), `mpqa`,
  `chnsenticorp_htl`, `waimai_10k`, `wikiann_*` (Wikipedia text, CC BY-SA). None of the
  bundled sets' licence lines forbids redistribution; check them before any commercial use.
- `indonlu_emot` and `sst5` have builders but are not bundled, to stay within the ~30 MB budget
  (`python scripts/build_bundled_tasks.py --extras` adds them; SST-5 also shares SST-2's sentences).
- Other shared sets not bundled: glue_qnli (built from SQuAD), glue_wnli, jglue_jcommonsenseqa (multiple
  choice: no matching task type), mr and subj (Rotten Tomatoes snippets, many also in SST-2),
  plue_mrpc_pt / plue_rte_pt / plue_stsb_pt train files.
"""


SHORT_LICENCE = {
    "glue_sst2": "not stated (SST)",
    "glue_cola": "not stated (CoLA, research)",
    "glue_mrpc": "MSR Paraphrase Corpus licence (research use)",
    "glue_rte": "not stated (GLUE / PASCAL RTE)",
    "glue_stsb": "CC BY-SA 4.0 scores; texts: source licences",
    "sick": "CC BY-NC-SA 3.0",
    "squad_v1.1": "CC BY-SA 4.0",
    "wnut17": "CC BY 4.0",
    "wikiann_de": "not stated (Wikipedia text, CC BY-SA)",
    "wikiann_id": "not stated (Wikipedia text, CC BY-SA)",
    "wikiann_hi": "not stated (Wikipedia text, CC BY-SA)",
    "ag_news": "non-commercial research use",
    "chemprot": "not stated",
    "financial_phrasebank": "CC BY-NC-SA 3.0",
    "tweeteval_emotion": "TweetEval: no restrictions; Twitter terms may apply",
    "scicite": "not stated",
    "sciie_relation": "not stated",
    "germeval2018": "CC BY 4.0",
    "indonlu_smsa": "Apache-2.0 (IndoNLU repo)",
    "indonlu_wrete": "Apache-2.0 (IndoNLU repo)",
    "indonlu_emot": "Apache-2.0 (IndoNLU repo)",
    "chnsenticorp_htl": "not stated",
    "waimai_10k": "not stated",
    "jglue_jsts": "CC BY-SA 4.0",
    "klue_nli": "CC BY-SA 4.0",
    "plue_sst2_pt": "GPL-3.0 (PLUE repo)",
    "plue_mrpc_pt": "GPL-3.0 (PLUE repo)",
    "plue_rte_pt": "GPL-3.0 (PLUE repo)",
    "plue_stsb_pt": "GPL-3.0 (PLUE repo)",
    "sst5": "not stated (SST)",
    "acl_arc_citation_intent": "not stated (SciBERT repo: Apache-2.0)",
    "emotion": "not stated (educational and research use)",
    "mpqa": "not stated (MPQA)",
    "tweeteval_hate": "TweetEval: no restrictions; Twitter terms may apply",
    "tweeteval_offensive": "TweetEval: no restrictions; Twitter terms may apply",
    "tweeteval_emoji": "TweetEval: no restrictions; Twitter terms may apply",
}


def short_licence(spec):
    sources = [s.strip() for s in spec["source"].split(",")]
    if len(sources) == 1:
        return SHORT_LICENCE[sources[0]]
    return "train: %s; dev: %s" % (SHORT_LICENCE[sources[0]], SHORT_LICENCE[sources[1]])


SCORING_HEAD = """
## How each task is scored

Each task's `task.json` names its primary metric (`metric`), the class a one-class metric is
about (`positive_label`) and where the choice comes from (`metric_reason`): the benchmark's own
metric where it has one, else the rule used for user data (see the main README, "Metrics").
Every run also records the same metric for the constant predictor (majority class, training mean,
no entities) on the same dev set.

| task | metric | why |
| --- | --- | --- |
"""


def metric_label(spec):
    """``f1 (paraphrase)`` for a one-class metric, else the metric's name."""
    return "%s (%s)" % (spec["metric"], spec["positive_label"]) if spec.get("positive_label") else spec["metric"]


def write_readme(out_dir, specs):
    lines = [README_HEAD.format(max_train=fmt(MAX_TRAIN), max_dev=fmt(MAX_DEV), seed=SEED)]
    for s in specs:
        lang = s["language"] if s["language"] == s["eval_language"] else "%s -> %s" % (s["language"], s["eval_language"])
        lic = short_licence(s)
        lines.append("| %s | %s | %s | %s | %s | %s | %s | %s |\n" % (
            s["name"], s["task_type"], lang, s["domain"], fmt(s["n_train"]), fmt(s["n_dev"]), metric_label(s),
            lic))
    lines.append("\nFull licence text per task: `license` in its `task.json` and the Source section of its PROVENANCE.md.\n")
    lines.append(SCORING_HEAD)
    for s in sorted(specs, key=lambda spec: spec["name"]):
        lines.append("| %s | %s | %s |\n" % (s["name"], metric_label(s), s["metric_reason"]))
    lines.append(README_TAIL)
    with open(os.path.join(out_dir, "README.md"), "w", encoding="utf-8", newline="\n") as f:
        f.write("".join(lines))


def build_all(src, extras=False):
    tasks = []
    add = tasks.append
    sst2 = build_glue_sst2(src); add(sst2)
    add(build_glue_cola(src))
    mrpc = build_glue_mrpc(src); add(mrpc)
    rte = build_glue_rte(src); add(rte)
    stsb = build_glue_stsb(src); add(stsb)
    tasks.extend(build_sick(src))
    add(build_squad(src))
    add(build_wnut17(src))
    add(build_wikiann(src, "de", "wikiann_de", "train", "dev", "de:", "German"))
    add(build_wikiann(src, "id", "wikiann_id", "train-id.tsv", "dev-id.tsv", None, "Indonesian"))
    add(build_wikiann(src, "hi", "wikiann_hi", "train-hi.tsv", "dev-hi.tsv", None, "Hindi"))
    add(build_ag_news(src))
    add(build_scibert_jsonl(src, "chemprot", "chemprot", "biomedical",
                            "ChemProt: chemical-protein relation type (13 classes) in PubMed sentences with inline entity markers.",
                            ["Entities are marked inline with `<< >>` and `[[ ]]`; kept as is.",
                             "Some relation types are very rare (AGONIST-INHIBITOR, SUBSTRATE_PRODUCT-OF, AGONIST-ACTIVATOR)."]))
    add(build_financial_phrasebank(src))
    add(build_tweeteval(src, "tweeteval_emotion", "tweeteval_emotion",
                        "TweetEval emotion: 4-class emotion (anger / joy / optimism / sadness) of English tweets."))
    add(build_scibert_jsonl(src, "scicite", "scicite", "science",
                            "SciCite: citation intent (background / method / result) of citation contexts in scientific papers.",
                            ["Some texts contain newlines inside the citation context (kept)."]))
    add(build_germeval(src))
    add(build_indonlu_smsa(src))
    add(build_indonlu_wrete(src))
    add(build_sentiment_csv(src, "chnsenticorp_htl", "chnsenticorp_htl", "ChnSentiCorp_htl_all.csv", "reviews",
                            "ChnSentiCorp hotel: binary sentiment of Chinese hotel reviews."))
    add(build_sentiment_csv(src, "waimai_10k", "waimai_10k", "waimai_10k.csv", "reviews",
                            "waimai_10k: binary sentiment of short Chinese food-delivery reviews."))
    add(build_jsts(src))
    add(build_klue_nli(src))
    add(build_plue_sst2_pt(src))
    add(build_xling(src, "xling_sst2_en_pt", sst2, "plue_sst2_pt", pt_sst2))
    add(build_xling(src, "xling_mrpc_en_pt", mrpc, "plue_mrpc_pt", pt_mrpc))
    add(build_xling(src, "xling_rte_en_pt", rte, "plue_rte_pt", pt_rte))
    add(build_xling(src, "xling_stsb_en_pt", stsb, "plue_stsb_pt", pt_stsb))
    # Seven more English classification sets, each its own source, added to widen the knowledge
    # base's held-out task groups (named so that `multitask_ft`'s automatic co-task, the first
    # bundled task of the same type and language by name, stays what it was for every other task).
    add(build_scibert_jsonl(src, "sciie_relation", "sciie_relation", "science",
                            "SciERC relation classification: relation type (7 classes) between two marked entities in AI abstracts.",
                            ["Entities are marked inline with `[[ ]]` and `<< >>`; kept as is."]))
    add(build_acl_arc(src))
    add(build_emotion(src))
    add(build_mpqa(src))
    add(build_tweeteval(src, "tweeteval_hate", "tweeteval_hate",
                        "TweetEval hate: is an English tweet hateful against immigrants or women (SemEval-2019 HatEval)."))
    add(build_tweeteval(src, "tweeteval_offensive", "tweeteval_offensive",
                        "TweetEval offensive: is an English tweet offensive (SemEval-2019 OffensEval)."))
    add(build_tweeteval(src, "tweeteval_emoji", "tweeteval_emoji",
                        "TweetEval emoji: which of 20 emoji an English tweet carried (SemEval-2018 emoji prediction)."))
    if extras:
        # Not bundled by default: they would push data/tasks over its size budget; SST-5 also
        # shares its sentences with SST-2.
        add(build_indonlu_emot(src))
        add(build_sst5(src))
    return tasks


# ----------------------------------------------------------------------------
# Verification (re-reads everything from disk)
# ----------------------------------------------------------------------------

#: each task's primary metric (the benchmark's own, else the default rule for its labels), the
#: positive class where the metric is about one class, and where the choice comes from
OFFICIAL_METRICS = {
    'ag_news': ('accuracy', None,
        'AG News benchmark (Zhang et al., 2015) reports test accuracy (error rate)'),
    'chemprot': ('micro_f1', None,
        'ChemProt as in SciBERT (Beltagy et al., 2019): micro-F1 over the relation classes; this version has no negative class, so it equals accuracy'),
    'chnsenticorp_htl': ('mcc', None,
        'no official benchmark for this hotel-review set: the default rule for imbalanced binary labels (69 % / 31 %)'),
    'financial_phrasebank': ('macro_f1', None,
        'FinBERT (Araci, 2019) reports accuracy and F1 on Financial PhraseBank; macro-F1 because the classes are imbalanced (61 % neutral)'),
    'germeval2018_offense': ('macro_f1', None,
        'GermEval 2018 shared task (Wiegand et al., 2018): macro-averaged F1 is the official measure'),
    'glue_cola': ('mcc', None,
        'GLUE (Wang et al., 2019): CoLA is scored by Matthews correlation'),
    'glue_mrpc': ('f1', 'paraphrase',
        'GLUE (Wang et al., 2019): MRPC reports F1 of the paraphrase class (and accuracy)'),
    'glue_rte': ('accuracy', None,
        'GLUE (Wang et al., 2019): RTE is scored by accuracy'),
    'glue_sst2': ('accuracy', None,
        'GLUE (Wang et al., 2019): SST-2 is scored by accuracy'),
    'glue_stsb': ('pearson', None,
        'GLUE (Wang et al., 2019): STS-B reports Pearson and Spearman correlation'),
    'indonlu_smsa': ('macro_f1', None,
        'IndoNLU (Wilie et al., 2020): every task is scored by macro-F1'),
    'indonlu_wrete': ('macro_f1', None,
        'IndoNLU (Wilie et al., 2020): every task is scored by macro-F1'),
    'jglue_jsts': ('pearson', None,
        'JGLUE (Kurihara et al., 2022): JSTS reports Pearson and Spearman correlation'),
    'klue_nli': ('accuracy', None,
        'KLUE (Park et al., 2021): KLUE-NLI is scored by accuracy'),
    'plue_sst2_pt': ('accuracy', None,
        'PLUE mirrors GLUE: SST-2 is scored by accuracy'),
    'scicite': ('macro_f1', None,
        'SciCite (Cohan et al., 2019) reports macro-F1'),
    'sick_nli': ('accuracy', None,
        'SICK entailment (SemEval-2014 Task 1, Marelli et al., 2014) is scored by accuracy'),
    'sick_relatedness': ('pearson', None,
        'SICK relatedness (SemEval-2014 Task 1): Pearson correlation is the primary measure'),
    'squad': ('f1', None,
        'SQuAD v1.1 (Rajpurkar et al., 2016): official token F1 (and exact match)'),
    'citation_intent_acl_arc': ('macro_f1', None,
        'ACL-ARC as in Gururangan et al. (2020, "Don\'t Stop Pretraining"): macro-F1'),
    'emotion': ('macro_f1', None,
        'no metric fixed by the source: the default rule for imbalanced classes (35 % joy, 3 % surprise): macro-F1'),
    'mpqa': ('accuracy', None,
        'SentEval (Conneau & Kiela, 2018) scores MPQA by accuracy'),
    'sciie_relation': ('macro_f1', None,
        'SciERC relation classification as in Gururangan et al. (2020, "Don\'t Stop Pretraining"): macro-F1'),
    'tweeteval_emoji': ('macro_f1', None,
        'TweetEval (Barbieri et al., 2020): emoji prediction is scored by macro-F1'),
    'tweeteval_hate': ('macro_f1', None,
        'TweetEval (Barbieri et al., 2020): hate speech detection is scored by macro-F1'),
    'tweeteval_offensive': ('macro_f1', None,
        'TweetEval (Barbieri et al., 2020): offensive language identification is scored by macro-F1'),
    'tweeteval_emotion': ('macro_f1', None,
        'TweetEval (Barbieri et al., 2020): emotion recognition is scored by macro-F1'),
    'waimai_10k': ('mcc', None,
        'no official benchmark for this delivery-review set: the default rule for imbalanced binary labels (67 % / 33 %)'),
    'wikiann_de': ('f1', None,
        'WikiANN as in XTREME (Hu et al., 2020): entity-level F1'),
    'wikiann_hi': ('f1', None,
        'WikiANN as in XTREME (Hu et al., 2020): entity-level F1'),
    'wikiann_id': ('f1', None,
        'WikiANN as in XTREME (Hu et al., 2020): entity-level F1'),
    'wnut17': ('f1', None,
        'WNUT-17 (Derczynski et al., 2017): entity-level F1'),
    'xling_mrpc_en_pt': ('f1', 'paraphrase',
        'GLUE / PLUE: MRPC reports F1 of the paraphrase class'),
    'xling_rte_en_pt': ('accuracy', None,
        'GLUE / PLUE: RTE is scored by accuracy'),
    'xling_sst2_en_pt': ('accuracy', None,
        'GLUE / PLUE: SST-2 is scored by accuracy'),
    'xling_stsb_en_pt': ('pearson', None,
        'GLUE / PLUE: STS-B reports Pearson correlation'),
}


SPEC_KEYS = ["name", "task_type", "metric", "metric_reason", "language", "eval_language", "domain", "description", "source",
             "train_file", "dev_file", "text_col", "text_pair_col", "label_col", "label_names", "n_train",
             "n_dev", "license"]


def load_jsonl(path):
    with open(path, encoding="utf-8", newline="") as f:
        text = f.read()
    assert text.endswith("\n"), path
    lines = text.split("\n")[:-1]
    return [json.loads(line) for line in lines]


def verify(out_dir, names):
    """Check every task folder; return a list of problems (empty = all good)."""
    problems = []

    def check(cond, msg):
        if not cond:
            problems.append(msg)

    for name in names:
        tdir = os.path.join(out_dir, name)
        with open(os.path.join(tdir, "task.json"), encoding="utf-8") as f:
            spec = json.load(f)
        check([k for k in spec if k != "positive_label"] == SPEC_KEYS, "%s: task.json keys %r" % (name, list(spec)))
        check(spec["name"] == name, "%s: name mismatch" % name)
        check(os.path.isfile(os.path.join(tdir, "PROVENANCE.md")), "%s: no PROVENANCE.md" % name)
        train = load_jsonl(os.path.normpath(os.path.join(tdir, spec["train_file"])))
        dev = load_jsonl(os.path.join(tdir, spec["dev_file"]))
        check(spec["n_train"] == len(train), "%s: n_train %d != %d" % (name, spec["n_train"], len(train)))
        check(spec["n_dev"] == len(dev), "%s: n_dev %d != %d" % (name, spec["n_dev"], len(dev)))
        check(0 < len(train) <= MAX_TRAIN and 0 < len(dev) <= MAX_DEV, "%s: split sizes out of range" % name)
        tt = spec["task_type"]
        names_ = spec["label_names"]
        for split, rows in (("train", train), ("dev", dev)):
            for i, r in enumerate(rows):
                where = "%s/%s[%d]" % (name, split, i)
                if tt in ("classification", "regression"):
                    keys = {"text", "label"} | ({"text_pair"} if spec["text_pair_col"] else set())
                    check(set(r) == keys, "%s: keys %r" % (where, sorted(r)))
                    check(all(isinstance(r.get(k), str) and r[k].strip() for k in keys - {"label"}),
                          "%s: empty text" % where)
                    if tt == "classification":
                        check(isinstance(r["label"], str) and r["label"] in names_, "%s: label %r" % (where, r["label"]))
                    else:
                        check(isinstance(r["label"], float), "%s: label %r" % (where, r["label"]))
                elif tt == "extractive_qa":
                    check(set(r) == {"id", "title", "question", "context", "answers"}, "%s: keys" % where)
                    a = r["answers"]
                    check(len(a["text"]) == len(a["answer_start"]) > 0, "%s: answers" % where)
                    for t, st in zip(a["text"], a["answer_start"]):
                        check(isinstance(st, int) and r["context"][st:st + len(t)] == t,
                              "%s: answer %r not at %r" % (where, t, st))
                else:
                    check(set(r) == {"tokens", "tags"}, "%s: keys" % where)
                    check(len(r["tokens"]) == len(r["tags"]) > 0, "%s: length mismatch" % where)
                    check(all(t in names_ for t in r["tags"]), "%s: unknown tag" % where)
                    check(all(isinstance(t, str) and t for t in r["tokens"]), "%s: empty token" % where)
        if tt == "classification":
            train_labels = {r["label"] for r in train}
            check(all(r["label"] in train_labels for r in dev), "%s: a dev label never occurs in train" % name)
        if tt == "extractive_qa":
            check(not ({r["title"] for r in train} & {r["title"] for r in dev}), "%s: article in both splits" % name)
            ids = [r["id"] for r in train + dev]
            check(len(ids) == len(set(ids)), "%s: duplicate question ids" % name)
        if tt in ("regression", "extractive_qa"):
            check(names_ is None, "%s: label_names should be null" % name)
        else:
            check(names_ == sorted(names_), "%s: label_names not sorted" % name)
    return problems


def main(argv=None):
    repo_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("shared_data", nargs="?", default=os.path.join(repo_root, "..", "shared", "data"),
                    help="path to the shared data folder (default: ../shared/data relative to the repo root)")
    ap.add_argument("--out", default=os.path.join(repo_root, "data", "tasks"), help="output folder")
    ap.add_argument("--extras", action="store_true",
                    help="also build indonlu_emot and sst5 (not bundled: size budget)")
    args = ap.parse_args(argv)
    src = os.path.normpath(args.shared_data)
    out_dir = os.path.normpath(args.out)
    tasks = build_all(src, extras=args.extras)
    os.makedirs(out_dir, exist_ok=True)
    specs = []
    for task in tasks:
        tdir = os.path.join(out_dir, task.name)
        if os.path.isdir(tdir):
            shutil.rmtree(tdir)
        os.makedirs(tdir)
        if not task.train_ref:
            write_jsonl(os.path.join(tdir, "train.jsonl"), task.train.rows)
        write_jsonl(os.path.join(tdir, "dev.jsonl"), task.dev.rows)
        spec = task_spec(task, src)
        with open(os.path.join(tdir, "task.json"), "w", encoding="utf-8", newline="\n") as f:
            f.write(json.dumps(spec, ensure_ascii=False, indent=2) + "\n")
        with open(os.path.join(tdir, "PROVENANCE.md"), "w", encoding="utf-8", newline="\n") as f:
            f.write(provenance_md(task, src, spec))
        specs.append(spec)
        print("%-22s %-21s %-8s train=%5d dev=%5d" % (task.name, task.task_type, spec["language"] + (
            "->" + spec["eval_language"] if spec["eval_language"] != spec["language"] else ""),
            spec["n_train"], spec["n_dev"]))
    write_readme(out_dir, specs)
    problems = verify(out_dir, [t.name for t in tasks])
    for p in problems[:50]:
        print("PROBLEM:", p, file=sys.stderr)
    print("verification: %s" % ("OK" if not problems else "%d problems" % len(problems)))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
