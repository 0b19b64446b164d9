"""Supervised fine-tuning of a GPT (Radford et al. 2018, "Improving Language Understanding by Generative
Pre-Training", sections 3.2-3.3).

The pretrained transformer reads each task's input as one or more token sequences (``radford.data.tasks``
builds them: figure 1's ``[start] ... [delim] ... [extract]``); a linear layer reads the final hidden state at
the extract token. The three special tokens are new: the token embedding, and the LM head tied to it, grow
by three rows that train with the rest. Training minimises the task loss plus ``lm_coef`` times the language
modelling loss on the same inputs (section 3.2, equation 5), which the paper finds helps larger datasets
and speeds convergence (section 5, table 5).
"""

from __future__ import annotations

from functools import partial
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics import MeanMetric, MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score, MulticlassMatthewsCorrCoef
from torchmetrics.regression import PearsonCorrCoef, SpearmanCorrCoef

from radford.errors import RadfordError
from radford.models.common import adamw, logging_step
from radford.models.gpt import ARCHITECTURE, GPT
from radford.tasks import NUM_SPECIAL, Task, check_task

Batch = dict[str, Tensor]


def warmup_linear(step: int, warmup_steps: int, total_steps: int) -> float:
    """Learning-rate multiplier: linear from 0 to 1 over warmup_steps, then linear down to 0 at total_steps
    (GPT-1 paper section 4.1, fine-tuning details)."""
    if step < warmup_steps:
        return step / warmup_steps
    return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))


def grow_embeddings(gpt: GPT, extra: int) -> None:
    """Append ``extra`` token rows, drawn N(0, 0.02) as at pre-training, to GPT's tied embedding and LM head."""
    vocab, width = gpt.lm_head.weight.shape
    grown = nn.Linear(width, vocab + extra, bias=False, device=gpt.lm_head.weight.device)
    with torch.no_grad():
        nn.init.normal_(grown.weight, mean=0.0, std=0.02)
        grown.weight[:vocab] = gpt.lm_head.weight
    gpt.lm_head = grown
    gpt.transformer.wte.weight = grown.weight
    gpt.transformer.wte.num_embeddings = vocab + extra


class GPTFineTune(L.LightningModule):
    """A GPT with a linear head for a classification, entailment, similarity or multiple-choice task.

    Args:
        task: the input transformation and head (section 3.3); the CLI gives the data module this task.
        num_classes: classes for classification and entailment; for similarity 1 means a regression on a score
            (mean squared error), more a classification of the pair. Multiple choice scores each choice and
            ignores it.
        pretrained: a radford .ckpt of a GPT or a Hugging Face GPT-2/GPT-1 folder; its architecture and weights
            replace the architecture arguments below. None trains from a random init (the paper's ablation).
        vocab_size: the tokenizer's vocabulary without the three special tokens; the CLI links it from the data.
        block_size, n_layer, n_head, n_embd, bias, post_norm: the architecture, when pretrained is None
            (defaults: GPT-1's).
        dropout: residual, attention and embedding dropout in the transformer (GPT-1 used 0.1 throughout).
        lm_coef: the weight of the auxiliary language-modelling loss (section 3.2's lambda); 0 turns it off.
        classifier_dropout: dropout on the extract state before the head (section 4.1).
        learning_rate, weight_decay, betas: AdamW; weight decay on matrices and embeddings only.
        warmup_fraction: the fraction of training spent warming the learning rate up before it decays
            linearly to 0 (section 4.1: 0.2 %).
    """

    def __init__(
        self,
        task: Task = "classification",
        num_classes: int = 2,
        pretrained: str | None = None,
        vocab_size: int = 40478,
        block_size: int = 512,
        n_layer: int = 12,
        n_head: int = 12,
        n_embd: int = 768,
        bias: bool = True,
        post_norm: bool = True,
        dropout: float = 0.1,
        lm_coef: float = 0.5,
        classifier_dropout: float = 0.1,
        learning_rate: float = 6.25e-5,
        weight_decay: float = 0.01,
        betas: tuple[float, float] = (0.9, 0.999),
        warmup_fraction: float = 0.002,
    ):
        super().__init__()
        check_task(task)
        if num_classes < (1 if task == "similarity" else 2) and task != "multiple_choice":
            raise RadfordError(
                f"num_classes must be at least {1 if task == 'similarity' else 2} for {task}, got {num_classes}"
            )
        if lm_coef < 0:
            raise RadfordError(f"lm_coef must be >= 0 (0 turns the auxiliary LM loss off), got {lm_coef}")
        if not 0.0 <= classifier_dropout < 1.0:
            raise RadfordError(f"classifier_dropout must be in [0, 1), got {classifier_dropout}")
        if not 0.0 <= warmup_fraction < 1.0:
            raise RadfordError(f"warmup_fraction must be in [0, 1), got {warmup_fraction}")
        self.gpt = GPT(
            vocab_size=vocab_size,
            block_size=block_size,
            n_layer=n_layer,
            n_head=n_head,
            n_embd=n_embd,
            bias=bias,
            post_norm=post_norm,
            dropout=dropout,
            pretrained=pretrained,
        )
        # As GPT does: record the architecture actually built, not the path, so this run's checkpoints rebuild
        # without the pretrained file (their own weights replace the init).
        self.save_hyperparameters(ignore="pretrained")
        self.save_hyperparameters({name: self.gpt.hparams[name] for name in ARCHITECTURE})
        grow_embeddings(self.gpt, NUM_SPECIAL)

        self.regression = task == "similarity" and num_classes == 1
        outputs = 1 if self.regression or task == "multiple_choice" else num_classes
        self.classifier_dropout = nn.Dropout(classifier_dropout)
        self.head = nn.Linear(self.gpt.hparams.n_embd, outputs)
        nn.init.normal_(self.head.weight, mean=0.0, std=0.02)
        nn.init.zeros_(self.head.bias)
        self.metrics = nn.ModuleDict({split: self._metrics(f"{split}_") for split in ("val", "test")})

    def _metrics(self, prefix: str) -> MetricCollection:
        hp = self.hparams
        if self.regression:
            metrics = {"pearson": PearsonCorrCoef(), "spearman": SpearmanCorrCoef()}
        elif hp.task == "multiple_choice":  # the number of choices may vary: accuracy is the mean of hits
            metrics = {"acc": MeanMetric()}
        else:
            metrics = {
                "acc": MulticlassAccuracy(hp.num_classes, average="micro"),
                "f1": MulticlassF1Score(hp.num_classes, average="macro"),
                "mcc": MulticlassMatthewsCorrCoef(hp.num_classes),
            }
        return MetricCollection(metrics, prefix=prefix)

    # -- the model --------------------------------------------------------------------------------------

    def _extract_states(self, input_ids: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """Every sequence's final hidden states (examples * sequences, time, n_embd) and the states at each
        extract token, the last non-padding position (examples, sequences, n_embd)."""
        examples, sequences, _ = input_ids.shape
        hidden = self.gpt.hidden_states(input_ids.flatten(0, 1))
        # A missing choice (length 0) reads position 0; its score is masked out below.
        last = (lengths.flatten() - 1).clamp(min=0)
        extract = hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
        return hidden, extract.view(examples, sequences, -1)

    def _logits(self, extract: Tensor, lengths: Tensor) -> Tensor:
        task = self.hparams.task
        if task == "multiple_choice":
            # One score per choice, a softmax over the choices (section 3.3, multiple choice).
            scores = self.head(self.classifier_dropout(extract)).squeeze(-1)
            return scores.masked_fill(lengths == 0, float("-inf"))
        # Similarity: the two orders' states are added element-wise before the head (section 3.3).
        features = extract.sum(1) if task == "similarity" else extract[:, 0]
        logits = self.head(self.classifier_dropout(features))
        return logits.squeeze(-1) if self.regression else logits

    def forward(self, input_ids: Tensor, lengths: Tensor) -> Tensor:
        """Task logits for a batch of ``radford.data.tasks``: (examples, classes), (examples, choices), or
        (examples,) similarity scores for a regression."""
        _, extract = self._extract_states(input_ids, lengths)
        return self._logits(extract, lengths)

    def _lm_loss(self, input_ids: Tensor, lengths: Tensor, hidden: Tensor) -> Tensor:
        """Mean next-token cross-entropy over the real tokens of every sequence (padding is no target)."""
        ids = input_ids.flatten(0, 1)
        positions = torch.arange(ids.shape[1] - 1, device=ids.device)
        scored = positions < (lengths.flatten()[:, None] - 1)
        # Only the scored positions go through the LM head: padding would cost a vocabulary-wide matmul.
        return F.cross_entropy(self.gpt.lm_head(hidden[:, :-1][scored]), ids[:, 1:][scored])

    def objective(self, batch: Batch) -> dict[str, Tensor]:
        """The task logits and losses of a labelled batch: ``loss`` = ``task_loss`` + lm_coef * ``lm_loss``
        (section 3.2, equation 5); ``lm_loss`` only where lm_coef > 0."""
        input_ids, lengths, labels = batch["input_ids"], batch["lengths"], batch["labels"]
        hidden, extract = self._extract_states(input_ids, lengths)
        logits = self._logits(extract, lengths)
        if self.regression:
            task_loss = F.mse_loss(logits, labels.float())
        else:
            classes = logits.shape[-1]
            if int(labels.max()) >= classes:
                raise RadfordError(
                    f"label {int(labels.max())} is out of range for a model of {classes} "
                    f"{'choices' if self.hparams.task == 'multiple_choice' else 'classes'}: "
                    "set model.init_args.num_classes to the number of labels"
                )
            task_loss = F.cross_entropy(logits, labels.long())
        out = {"logits": logits, "task_loss": task_loss, "loss": task_loss}
        if self.hparams.lm_coef > 0:
            out["lm_loss"] = self._lm_loss(input_ids, lengths, hidden)
            out["loss"] = task_loss + self.hparams.lm_coef * out["lm_loss"]
        return out

    def predictions(self, logits: Tensor) -> Tensor:
        """Class (or choice) indices from logits; similarity scores as they are."""
        return logits if self.regression else logits.argmax(-1)

    # -- Lightning hooks --------------------------------------------------------------------------------

    def training_step(self, batch: Batch, batch_idx: int) -> Tensor:
        out = self.objective(batch)
        if logging_step(self._trainer):
            self.log("train_loss", out["loss"], prog_bar=True)
            self.log("train_task_loss", out["task_loss"])
            if "lm_loss" in out:
                self.log("train_lm_loss", out["lm_loss"])
        return out["loss"]

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def _evaluate(self, batch: Batch, split: str) -> None:
        out = self.objective(batch)
        predicted, labels = self.predictions(out["logits"]), batch["labels"]
        metrics = self.metrics[split]
        if self.hparams.task == "multiple_choice":
            metrics.update((predicted == labels).float())
        else:
            metrics.update(predicted, labels if self.regression else labels.long())
        self.log(f"{split}_loss", out["task_loss"], batch_size=len(labels))
        self.log_dict(metrics)

    def predict_step(self, batch: Batch, batch_idx: int) -> Tensor:
        """Predicted labels (class or choice indices), or scores for a similarity regression."""
        return self.predictions(self(batch["input_ids"], batch["lengths"]))

    def configure_optimizers(self) -> dict[str, Any]:
        hp = self.hparams
        optimizer = adamw(self, hp.learning_rate, hp.betas, hp.weight_decay)  # as in pre-training
        total = int(self.trainer.estimated_stepping_batches)
        schedule = partial(warmup_linear, warmup_steps=int(hp.warmup_fraction * total), total_steps=total)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
