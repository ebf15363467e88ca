"""Task-adaptive pretraining, then full fine-tuning (Gururangan et al., 2020: the TAPT baseline).

Before fine-tuning, the encoder continues masked-language-model training on the task's own
training texts. That stage runs inside the run's time budget (at most half of it) and its cost
is recorded with the run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from recommender.config_utils import check_range
from recommender.methods.base import register_method
from recommender.methods.full_ft import FullFineTuning, FullFTConfig

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from recommender.tasks import Task


@dataclass(frozen=True)
class TAPTConfig(FullFTConfig):
    tapt_steps: int = field(default=100, metadata={"help": "masked-LM steps on the task's texts"})
    tapt_learning_rate: float = field(default=1e-4, metadata={"help": "masked-LM learning rate"})
    mlm_probability: float = field(default=0.15, metadata={"help": "share of tokens masked"})
    tapt_batch_size: int = field(default=16, metadata={"help": "masked-LM batch size"})

    def __post_init__(self) -> None:
        super().__post_init__()
        check_range("TAPTConfig", "tapt_steps", self.tapt_steps, 1, 1_000_000)
        check_range("TAPTConfig", "tapt_learning_rate", self.tapt_learning_rate, 0, 1, low_open=True)
        check_range("TAPTConfig", "mlm_probability", self.mlm_probability, 0.01, 0.9)
        check_range("TAPTConfig", "tapt_batch_size", self.tapt_batch_size, 1, 4096)


@register_method
class TAPTFineTuning(FullFineTuning):
    no_peft_reason = ('task-adaptive pre-training followed by full fine-tuning: the artifact is a whole transformers model, not an adapter')
    artifact_kind = "full_model"
    budgeted_stage = ("tapt_steps", "tapt_steps")  # (steps done in extra, steps asked in params)
    name = "tapt_ft"
    config_class = TAPTConfig
    description = "Masked-LM pretraining on the task's own texts, then full fine-tuning."

    def before_training(self, model: PreTrainedModel, task: Task, context: dict[str, Any]) -> dict[str, Any]:
        import torch
        from transformers import DataCollatorForLanguageModeling

        from recommender.models import load_model

        start = time.perf_counter()
        device, tokenizer, config = context["device"], context["tokenizer"], context["config"]
        deadline = context.get("deadline")
        mlm = load_model(context["model_path"], "masked_lm").to(device)
        mlm.train()
        texts = task.texts("train")
        encoded = tokenizer(texts, truncation=True, max_length=config.max_seq_length)["input_ids"]
        collator = DataCollatorForLanguageModeling(tokenizer, mlm_probability=self.config.mlm_probability,
                                                   return_tensors="pt")
        optimizer = torch.optim.AdamW(mlm.parameters(), lr=self.config.tapt_learning_rate)
        generator = torch.Generator().manual_seed(context.get("seed", 0))
        steps = tokens = 0
        losses = []
        while steps < self.config.tapt_steps:
            order = torch.randperm(len(encoded), generator=generator).tolist()
            for i in range(0, len(order), self.config.tapt_batch_size):
                if steps >= self.config.tapt_steps or (deadline is not None and time.perf_counter() > deadline):
                    break
                rows = [{"input_ids": encoded[j]} for j in order[i:i + self.config.tapt_batch_size]]
                batch = {k: v.to(device) for k, v in collator(rows).items()}
                loss = mlm(**batch).loss
                loss.backward()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                steps += 1
                tokens += sum(len(r["input_ids"]) for r in rows)
                losses.append(float(loss.detach()))
            else:
                continue
            break
        encoder_state = mlm.base_model.state_dict()
        missing = model.base_model.load_state_dict(encoder_state, strict=False)
        del mlm
        return {"tapt_steps": steps, "tapt_tokens": tokens, "tapt_seconds": time.perf_counter() - start,
                "tapt_first_loss": losses[0] if losses else None, "tapt_last_loss": losses[-1] if losses else None,
                "tapt_unloaded_keys": len(missing.missing_keys)}
