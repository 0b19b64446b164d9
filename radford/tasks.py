"""GPT-1's fine-tuning tasks (paper section 3.3, figure 1): their names, and the special tokens their input
transformations add, which the task head (``radford.models.finetune``) and the task data (``radford.data.tasks``)
must agree on."""

from __future__ import annotations

from typing import Literal, get_args

from radford.errors import RadfordError

Task = Literal["classification", "entailment", "similarity", "multiple_choice"]
TASKS: tuple[str, ...] = get_args(Task)
NUM_SPECIAL = 3  # [start], [delim], [extract]: ids vocab_size, vocab_size + 1, vocab_size + 2


def check_task(task: str) -> str:
    if task not in TASKS:
        raise RadfordError(f"unknown task {task!r}; valid: {', '.join(TASKS)}")
    return task
