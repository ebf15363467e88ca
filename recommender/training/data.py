"""Turn a task's splits into model features, batches with dynamic padding, and predictions.

Batches are grouped by length (shuffled mega-batches sorted by length, as in Hugging Face's
``LengthGroupedSampler``) so short texts are not padded to ``max_seq_length``.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from recommender.tasks import metrics as task_metrics
from recommender.training.scoring import Scored, ScoringSpec

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedTokenizerBase

    from recommender.tasks import Task
    from recommender.training.config import TrainingConfig

MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
MAX_ANSWER_TOKENS = 30


@dataclass
class Features:
    """Tokenized examples of one split: a list per model input, plus targets and bookkeeping."""

    inputs: dict[str, list[list[int]]]
    labels: list[Any]
    lengths: list[int]
    extra: dict[str, list[Any]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.lengths)

    @property
    def n_tokens(self) -> int:
        return int(sum(self.lengths))


def featurize(task: Task, split: str, tokenizer: PreTrainedTokenizerBase, config: TrainingConfig) -> Features:
    """Tokenize ``task``'s ``split`` ("train" or "dev") for its task type."""
    ds = task.train if split == "train" else task.dev
    max_len = config.max_seq_length
    if task.task_type in ("classification", "regression"):
        pair = list(ds["text_pair"]) if "text_pair" in ds.column_names else None
        enc = tokenizer(list(ds["text"]), pair, truncation=True, max_length=max_len)
        inputs = {k: enc[k] for k in MODEL_INPUTS if k in enc}
        return Features(inputs, list(ds["label"]), [len(x) for x in enc["input_ids"]])
    if task.task_type == "token_classification":
        enc = tokenizer(list(ds["tokens"]), is_split_into_words=True, truncation=True, max_length=max_len)
        labels, first_token = [], []
        for i, tags in enumerate(list(ds["tags"])):
            previous, row, firsts = None, [], []
            for pos, word in enumerate(enc.word_ids(i)):
                if word is None or word == previous:
                    row.append(-100)
                else:
                    row.append(tags[word])
                    firsts.append((pos, word))
                previous = word
            labels.append(row)
            first_token.append(firsts)
        inputs = {k: enc[k] for k in MODEL_INPUTS if k in enc}
        return Features(inputs, labels, [len(x) for x in enc["input_ids"]],
                        {"first_token": first_token, "n_words": [len(t) for t in list(ds["tokens"])],
                         "gold": list(ds["tags"])})
    return _featurize_qa(ds, split, tokenizer, config)


def _featurize_qa(ds: Any, split: str, tokenizer: PreTrainedTokenizerBase, config: TrainingConfig) -> Features:
    enc = tokenizer(
        [q.lstrip() for q in list(ds["question"])], list(ds["context"]), truncation="only_second",
        max_length=config.max_seq_length, stride=config.doc_stride,
        return_overflowing_tokens=True, return_offsets_mapping=True,
    )
    sample_map = enc.pop("overflow_to_sample_mapping")
    answers = list(ds["answers"])
    labels, offsets, example = [], [], []
    for i, offset in enumerate(enc["offset_mapping"]):
        seq_ids = enc.sequence_ids(i)
        ex = sample_map[i]
        answer = answers[ex]
        start_char = answer["answer_start"][0]
        end_char = start_char + len(answer["text"][0])
        ctx_start = seq_ids.index(1)
        ctx_end = len(seq_ids) - 1 - seq_ids[::-1].index(1)
        if offset[ctx_start][0] > start_char or offset[ctx_end][1] < end_char:
            labels.append((0, 0))  # answer not in this window: point at [CLS]
        else:
            s = ctx_start
            while s <= ctx_end and offset[s][0] <= start_char:
                s += 1
            e = ctx_end
            while e >= ctx_start and offset[e][1] >= end_char:
                e -= 1
            labels.append((s - 1, e + 1))
        offsets.append([o if seq_ids[k] == 1 else None for k, o in enumerate(offset)])
        example.append(ex)
    inputs = {k: enc[k] for k in MODEL_INPUTS if k in enc}
    extra = {"offsets": offsets, "example": example, "contexts": list(ds["context"]),
             "gold": [a["text"] for a in answers]}
    return Features(inputs, labels, [len(x) for x in enc["input_ids"]], extra)


def batch_indices(features: Features, batch_size: int, *, shuffle: bool, group_by_length: bool,
                  seed: int = 0) -> list[list[int]]:
    """Indices of each batch; length-grouped batches keep padding small."""
    idx = list(range(len(features)))
    rng = random.Random(seed)
    if shuffle:
        rng.shuffle(idx)
    if group_by_length:
        mega = batch_size * 50
        lengths = features.lengths
        idx = [i for start in range(0, len(idx), mega)
               for i in sorted(idx[start:start + mega], key=lambda j: -lengths[j])]
    batches = [idx[i:i + batch_size] for i in range(0, len(idx), batch_size)]
    if shuffle and group_by_length:
        rng.shuffle(batches)
    return batches


def collate(features: Features, indices: list[int], task_type: str, pad_id: int,
            pad_to: int | None = None, with_labels: bool = True) -> dict[str, torch.Tensor]:
    """Pad a batch to its longest member (or to ``pad_to``) and return tensors."""
    import torch

    width = pad_to or max(features.lengths[i] for i in indices)
    batch: dict[str, torch.Tensor] = {}
    for name, column in features.inputs.items():
        fill = pad_id if name == "input_ids" else 0
        rows = np.full((len(indices), width), fill, dtype=np.int64)
        for r, i in enumerate(indices):
            seq = column[i][:width]
            rows[r, : len(seq)] = seq
        batch[name] = torch.from_numpy(rows)
    if with_labels:
        labels = [features.labels[i] for i in indices]
        if task_type == "classification":
            batch["labels"] = torch.tensor(labels, dtype=torch.long)
        elif task_type == "regression":
            batch["labels"] = torch.tensor(labels, dtype=torch.float)
        elif task_type == "token_classification":
            rows = np.full((len(indices), width), -100, dtype=np.int64)
            for r, lab in enumerate(labels):
                rows[r, : len(lab[:width])] = lab[:width]
            batch["labels"] = torch.from_numpy(rows)
        else:
            batch["start_positions"] = torch.tensor([s for s, _ in labels], dtype=torch.long)
            batch["end_positions"] = torch.tensor([e for _, e in labels], dtype=torch.long)
    return batch


def compute_loss(task_type: str, outputs: Any, batch: dict[str, torch.Tensor], num_labels: int) -> torch.Tensor:
    import torch.nn.functional as F

    if task_type == "classification":
        return F.cross_entropy(outputs["logits"].float(), batch["labels"])
    if task_type == "regression":
        return F.mse_loss(outputs["logits"].float().view(-1), batch["labels"])
    if task_type == "token_classification":
        return F.cross_entropy(outputs["logits"].float().reshape(-1, num_labels), batch["labels"].reshape(-1),
                               ignore_index=-100)
    start = F.cross_entropy(outputs["start_logits"].float(), batch["start_positions"])
    end = F.cross_entropy(outputs["end_logits"].float(), batch["end_positions"])
    return (start + end) / 2


def align_outputs(outputs: Any, seq_len: int, inserted: int) -> dict[str, torch.Tensor]:
    """Drop the positions of soft-prompt tokens (inserted after [CLS]) from per-token outputs."""
    import torch

    out = {k: v for k, v in outputs.items() if k in ("logits", "start_logits", "end_logits")}
    if inserted:
        for key, value in out.items():
            per_token = key != "logits" or value.dim() == 3
            if per_token and value.shape[1] == seq_len + inserted:
                out[key] = torch.cat([value[:, :1], value[:, 1 + inserted:]], dim=1)
    return out


class Predictions:
    """Accumulates per-batch outputs and turns them into task metrics."""

    def __init__(self, task_type: str, features: Features, label_names: list[str] | None) -> None:
        self.task_type = task_type
        self.features = features
        self.label_names = label_names
        self.rows: dict[int, Any] = {}

    def add(self, indices: list[int], outputs: dict[str, torch.Tensor]) -> None:
        if self.task_type == "extractive_qa":
            start = outputs["start_logits"].float().cpu().numpy()
            end = outputs["end_logits"].float().cpu().numpy()
            for r, i in enumerate(indices):
                self.rows[i] = (start[r], end[r])
            return
        logits = outputs["logits"].float().cpu().numpy()
        for r, i in enumerate(indices):
            self.rows[i] = logits[r]

    def scored(self, spec: ScoringSpec) -> Scored:
        """Per-example gold and predicted values (and class probabilities), ready to score."""
        f = self.features
        n = len(f)
        if self.task_type == "classification":
            logits = np.stack([self.rows[i] for i in range(n)]) if n else np.zeros((0, spec.n_labels))
            return Scored(spec, f.labels, logits.argmax(axis=1).tolist(), task_metrics.softmax(logits))
        if self.task_type == "regression":
            return Scored(spec, f.labels, [float(self.rows[i].reshape(-1)[0]) for i in range(n)])
        if self.task_type == "token_classification":
            assert self.label_names is not None
            names = self.label_names
            y_true, y_pred = [], []
            for i in range(n):
                words = ["O"] * f.extra["n_words"][i]
                for pos, word in f.extra["first_token"][i]:
                    words[word] = names[int(np.argmax(self.rows[i][pos]))]
                y_true.append([names[t] for t in f.extra["gold"][i]])
                y_pred.append(words)
            return Scored(spec, y_true, y_pred)
        predictions, gold = self._qa_answers()
        return Scored(spec, gold, predictions)

    def gold(self) -> list[Any]:
        """The gold values, in the form :meth:`scored` reports them (for a constant baseline)."""
        f = self.features
        if self.task_type == "token_classification":
            assert self.label_names is not None
            return [[self.label_names[t] for t in tags] for tags in f.extra["gold"]]
        if self.task_type == "extractive_qa":
            return list(f.extra["gold"])
        return list(f.labels)

    def _qa_answers(self) -> tuple[list[str], list[list[str]]]:
        f = self.features
        best: dict[int, tuple[float, str]] = defaultdict(lambda: (-np.inf, ""))
        for i in range(len(f)):
            start, end = self.rows[i]
            offsets = f.extra["offsets"][i]
            ex = f.extra["example"][i]
            context = f.extra["contexts"][ex]
            top_s = np.argsort(start)[-20:][::-1]
            top_e = np.argsort(end)[-20:][::-1]
            for s in top_s:
                for e in top_e:
                    if (s >= len(offsets) or e >= len(offsets) or offsets[s] is None
                            or offsets[e] is None or e < s or e - s + 1 > MAX_ANSWER_TOKENS):
                        continue
                    score = float(start[s] + end[e])
                    if score > best[ex][0]:
                        best[ex] = (score, context[offsets[s][0]: offsets[e][1]])
        n_examples = len(f.extra["gold"])
        predictions = [best[ex][1] for ex in range(n_examples)]
        return predictions, f.extra["gold"]
