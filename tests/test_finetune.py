"""GPT-1 fine-tuning: input transformations, the head at the extract token, the auxiliary LM loss, task data
and its errors, and the CLI from ``radford fit`` to a predictions file."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch

from radford.data.tasks import PAD_ID, Example, TaskData, collate, transform
from radford.errors import RadfordError
from radford.models.finetune import GPTFineTune, warmup_linear
from radford.tokenizers import Char
from tests.helpers import radford_cli

V = 40  # a small vocabulary: [start], [delim], [extract] are 40, 41, 42
START, DELIM, EXTRACT = V, V + 1, V + 2


@pytest.fixture(autouse=True)
def quiet_lightning():
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)


def write_jsonl(path: Path, records: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return str(path)


def tiny_model(
    task: str = "classification",
    num_classes: int = 2,
    lm_coef: float = 0.5,
    post_norm: bool = False,
    vocab_size: int = V,
) -> GPTFineTune:
    torch.manual_seed(0)
    model = GPTFineTune(
        task=task,
        num_classes=num_classes,
        vocab_size=vocab_size,
        block_size=32,
        n_layer=2,
        n_head=2,
        n_embd=16,
        post_norm=post_norm,
        dropout=0.0,
        classifier_dropout=0.0,
        lm_coef=lm_coef,
    )
    return model.eval()


def batch_of(sequences: list[list[list[int]]], labels: list | None = None) -> dict[str, torch.Tensor]:
    labels = labels or [None] * len(sequences)
    return collate([Example(s, label) for s, label in zip(sequences, labels, strict=True)])


# -- input transformations (GPT-1 paper section 3.3, figure 1) ------------------------------------------------


@pytest.mark.parametrize(
    ("task", "record", "expected"),
    [
        ("classification", {"text": "ab", "label": 1}, [[2, 0, 1, 4]]),
        ("entailment", {"premise": "ab", "hypothesis": "b", "label": 0}, [[2, 0, 1, 3, 1, 4]]),
        ("similarity", {"text_a": "a", "text_b": "bb", "label": 0.5}, [[2, 0, 3, 1, 1, 4], [2, 1, 1, 3, 0, 4]]),
        (
            "multiple_choice",
            {"context": "ab", "choices": ["a", "bb"], "label": 1},
            [[2, 0, 1, 3, 0, 4], [2, 0, 1, 3, 1, 1, 4]],
        ),
    ],
)
def test_task_data_builds_the_papers_sequences(tmp_path, task, record, expected):
    # A character tokenizer trained on "a" and "b" has ids a=0, b=1, so the special tokens are 2, 3, 4.
    data = TaskData(Char(), task=task, train=write_jsonl(tmp_path / "train.jsonl", [record]))
    assert data.vocab_size == 2
    batch = next(iter(data.train_dataloader()))
    assert batch["lengths"][0].tolist() == [len(s) for s in expected]
    for j, sequence in enumerate(expected):
        assert batch["input_ids"][0, j, : len(sequence)].tolist() == sequence
        assert (batch["input_ids"][0, j, len(sequence) :] == PAD_ID).all()
    assert batch["labels"].tolist() == [record["label"]]


def test_truncation_keeps_the_special_tokens_and_cuts_the_context_first():
    text, short, long = list(range(10)), [20, 21], list(range(20, 30))
    assert transform("classification", [text], V, 5) == [[START, 0, 1, 2, EXTRACT]]
    # The premise gives way to the hypothesis; only a hypothesis longer than the budget is cut itself.
    assert transform("entailment", [text, short], V, 7) == [[START, 0, 1, DELIM, 20, 21, EXTRACT]]
    assert transform("entailment", [text, long], V, 7) == [[START, DELIM, 20, 21, 22, 23, EXTRACT]]
    # Multiple choice fits the context to each choice separately.
    choices = transform("multiple_choice", [text, short, [20]], V, 7)
    assert choices == [[START, 0, 1, DELIM, 20, 21, EXTRACT], [START, 0, 1, 2, DELIM, 20, EXTRACT]]
    # Similarity cuts the pair once, so both orders hold the same tokens.
    a_then_b, b_then_a = transform("similarity", [text, short], V, 7)
    assert a_then_b == [START, 0, 1, DELIM, 20, 21, EXTRACT] and b_then_a == [START, 20, 21, DELIM, 0, 1, EXTRACT]


# -- the model ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("post_norm", [False, True], ids=["gpt2-blocks", "gpt1-blocks"])
def test_head_reads_the_hidden_state_at_the_extract_token(post_norm):
    model = tiny_model(post_norm=post_norm)
    batch = batch_of([[[START, 5, 6, 7, EXTRACT]], [[START, 8, EXTRACT]]])  # the second is padded by 2
    logits = model(batch["input_ids"], batch["lengths"])
    hidden = model.gpt.hidden_states(batch["input_ids"][1])
    assert torch.allclose(logits[1], model.head(hidden[0, 2]), atol=1e-6)

    after_extract = batch["input_ids"].clone()
    after_extract[1, 0, 3:] = 9  # the padding after the second example's [extract]
    assert torch.allclose(model(after_extract, batch["lengths"]), logits, atol=1e-6)
    content = batch["input_ids"].clone()
    content[1, 0, 1] = 9
    changed = model(content, batch["lengths"])
    assert not torch.allclose(changed[1], logits[1], atol=1e-4)
    assert torch.allclose(changed[0], logits[0], atol=1e-6)  # examples do not see each other


def test_similarity_is_symmetric_in_its_two_texts():
    model = tiny_model("similarity", num_classes=1)
    a, b = [5, 6, 7], [8, 9]
    batch = batch_of([transform("similarity", [a, b], V, 32), transform("similarity", [b, a], V, 32)])
    scores = model(batch["input_ids"], batch["lengths"])
    assert scores.shape == (2,)  # one score per pair: a regression
    assert torch.allclose(scores[0], scores[1], atol=1e-6)
    classifier = tiny_model("similarity", num_classes=3)
    assert classifier(batch["input_ids"], batch["lengths"]).shape == (2, 3)


def test_multiple_choice_scores_each_choice_and_softmaxes_over_them():
    model = tiny_model("multiple_choice")
    choices = [transform("multiple_choice", [[5, 6], answer], V, 32) for answer in ([7], [8, 9], [10])]
    batch = batch_of([[c[0] for c in choices], [choices[2][0], choices[0][0]]])  # 3 choices, then 2 (padded)
    logits = model(batch["input_ids"], batch["lengths"])
    assert logits.shape == (2, 3) and logits[1, 2] == float("-inf")
    probabilities = logits.softmax(-1)
    assert torch.allclose(probabilities.sum(-1), torch.ones(2)) and probabilities[1, 2] == 0
    # A choice's score depends on that choice alone, not on its position or the other choices.
    assert torch.allclose(logits[1, :2], logits[0, [2, 0]], atol=1e-6)


def test_embeddings_grow_by_three_trained_rows():
    model = tiny_model().train()
    wte = model.gpt.transformer.wte.weight
    assert wte.shape == (V + 3, 16) and wte is model.gpt.lm_head.weight  # still tied
    batch = batch_of([transform("entailment", [[5, 6], [7]], V, 32)], labels=[1])
    model.objective(batch)["loss"].backward()
    assert (wte.grad[[START, DELIM, EXTRACT]].abs().sum(-1) > 0).all()


def test_pretrained_weights_are_kept_and_the_architecture_recorded(tmp_path):
    transformers = pytest.importorskip("transformers")
    config = transformers.GPT2Config(vocab_size=V, n_positions=24, n_embd=16, n_layer=2, n_head=2)
    hf = transformers.GPT2LMHeadModel(config).eval()
    hf.save_pretrained(tmp_path / "hf")
    model = GPTFineTune(pretrained=str(tmp_path / "hf"), vocab_size=V, block_size=512, n_layer=12)
    wte = model.gpt.transformer.wte.weight
    assert torch.equal(wte[:V], hf.transformer.wte.weight)
    assert 0.01 < wte[V:].std() < 0.03  # the new rows: N(0, 0.02)
    assert torch.equal(model.gpt.transformer.h[1].mlp.c_fc.weight, hf.transformer.h[1].mlp.c_fc.weight.t())
    # The checkpoint's architecture replaced the arguments and is what this run's checkpoints record.
    assert (model.hparams.block_size, model.hparams.n_layer, model.hparams.post_norm) == (24, 2, False)
    assert "pretrained" not in model.hparams


def test_lm_coef_adds_exactly_that_fraction_of_the_lm_loss():
    with_lm, without = tiny_model(lm_coef=0.5), tiny_model(lm_coef=0.0)
    without.load_state_dict(with_lm.state_dict())
    batch = batch_of([[[START, 5, 6, 7, EXTRACT]], [[START, 8, EXTRACT]]], labels=[0, 1])
    on, off = with_lm.objective(batch), without.objective(batch)
    assert "lm_loss" not in off and torch.equal(on["task_loss"], off["task_loss"])
    assert torch.allclose(on["loss"] - off["loss"], 0.5 * on["lm_loss"], atol=1e-6)
    # The LM loss is the next-token cross-entropy over real tokens only: padding is neither input nor target.
    logits = with_lm.gpt(torch.tensor([[START, 5, 6, 7, EXTRACT], [START, 8, EXTRACT, 0, 0]]))
    targets = torch.tensor([[5, 6, 7, EXTRACT], [8, EXTRACT, -100, -100]])
    assert torch.allclose(
        on["lm_loss"], torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1), targets.flatten()), atol=1e-6
    )


def test_warmup_then_linear_decay_to_zero():
    assert [warmup_linear(s, 2, 10) for s in (0, 1, 2, 6, 10, 11)] == [0.0, 0.5, 1.0, 0.5, 0.0, 0.0]
    assert warmup_linear(0, 0, 4) == 1.0  # no warmup: the first step at the full rate


@pytest.mark.parametrize(
    ("task", "records", "num_classes", "metrics"),
    [
        (
            "classification",
            [{"text": t, "label": i % 2} for i, t in enumerate(["ab", "ba", "aab", "bba", "b"])],
            2,
            {"val_acc", "val_f1", "val_mcc", "val_loss"},
        ),
        (
            "similarity",
            [{"text_a": t, "text_b": "ab", "label": i / 4} for i, t in enumerate(["a", "b", "ab", "ba"])],
            1,
            {"val_pearson", "val_spearman", "val_loss"},
        ),
        (
            "multiple_choice",
            [{"context": "ab", "choices": ["a", "b", "ab"][: 2 + i % 2], "label": i % 2} for i in range(5)],
            2,
            {"val_acc", "val_loss"},
        ),
    ],
)
def test_validation_logs_the_tasks_metrics(tmp_path, quiet_trainer, task, records, num_classes, metrics):
    path = write_jsonl(tmp_path / "data.jsonl", records)
    data = TaskData(Char(), task=task, train=path, val=path, predict=path, batch_size=2)
    torch.manual_seed(0)
    model = GPTFineTune(
        task=task,
        num_classes=num_classes,
        vocab_size=data.vocab_size,
        block_size=16,
        n_layer=1,
        n_head=2,
        n_embd=16,
        post_norm=False,
    )
    trainer = quiet_trainer()
    logged = trainer.validate(model, data)[0]
    assert set(logged) == metrics
    predicted = torch.cat(trainer.predict(model, data))
    if "val_acc" in metrics:
        labels = torch.tensor([r["label"] for r in records])
        assert logged["val_acc"] == pytest.approx((predicted == labels).float().mean().item())
    else:
        assert predicted.dtype == torch.float32 and predicted.shape == (len(records),)


# -- task data: files and their errors -----------------------------------------------------------------------


def test_string_labels_csv_and_choices_as_a_json_column(tmp_path):
    (tmp_path / "mc.csv").write_text('context,choices,label\nab,"[""a"", ""bb""]",1\n', encoding="utf-8")
    data = TaskData(Char(), task="multiple_choice", train=str(tmp_path / "mc.csv"))
    batch = next(iter(data.train_dataloader()))
    assert batch["lengths"].tolist() == [[6, 7]] and batch["labels"].tolist() == [1]
    records = [{"text": "a", "label": "rotten"}, {"text": "b", "label": "fresh"}]
    path = write_jsonl(tmp_path / "sentiment.jsonl", records)
    data = TaskData(Char(), train=path, labels=["fresh", "rotten"])
    assert sorted(next(iter(data.train_dataloader()))["labels"].tolist()) == [0, 1]


def error_of(make) -> str:
    with pytest.raises(RadfordError) as info:
        make()
    message = str(info.value)
    assert "\n" not in message
    return message


def test_data_errors_are_one_line_naming_the_bad_value(tmp_path):
    path = tmp_path / "nli.jsonl"
    path.write_text('{"premise": "a", "hypothesis": "b", "label": 0}\n\n{"premise": "a", "label": 1}\n')
    message = error_of(lambda: TaskData(Char(), task="entailment", train=str(path)).vocab_size)
    assert all(part in message for part in (str(path), "line 3", "'hypothesis'", "fields present: premise, label"))

    (tmp_path / "nli.csv").write_text("premise,label\na,0\n")
    message = error_of(lambda: TaskData(Char(), task="entailment", train=str(tmp_path / "nli.csv")).vocab_size)
    assert "line 2" in message and "'hypothesis'" in message

    labelled = write_jsonl(tmp_path / "labels.jsonl", [{"text": "a", "label": "fresh"}, {"text": "b", "label": "meh"}])
    message = error_of(lambda: TaskData(Char(), train=labelled, labels=["fresh", "rotten"]).train_dataloader())
    assert "line 2" in message and "'meh'" in message and "fresh, rotten" in message
    message = error_of(lambda: TaskData(Char(), train=labelled).train_dataloader())
    assert "'fresh'" in message and "labels" in message

    assert "not found" in error_of(lambda: TaskData(Char(), train=str(tmp_path / "missing.jsonl")))
    message = error_of(lambda: TaskData(Char(), task="regression"))
    assert "'regression'" in message and "classification, entailment, similarity, multiple_choice" in message
    assert "no train file" in error_of(lambda: TaskData(Char(), val=labelled).vocab_size)


# -- the CLI: fit the demo, predict into a file --------------------------------------------------------------


@pytest.mark.slow
def test_demo_fits_and_predict_writes_one_line_per_input(tmp_path):
    result = radford_cli("fit", "--recipe", "finetune-demo", "--trainer.max_steps", "3", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    checkpoint = tmp_path / "runs" / "finetune-demo" / "version_0" / "checkpoints" / "last.ckpt"
    texts = ["Run the event loop until the future is done.", "Parse a MIME message.", "Log a warning."]
    inputs = write_jsonl(tmp_path / "inputs.jsonl", [{"text": t} for t in texts])
    result = radford_cli(
        "predict",
        "--recipe",
        "finetune-demo",
        "--ckpt_path",
        str(checkpoint),
        "--data.init_args.predict",
        inputs,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [
        json.loads(line)
        for line in (tmp_path / "runs" / "finetune-demo" / "version_0" / "predict" / "predictions.jsonl")
        .read_text()
        .splitlines()
    ]
    assert [line["text"] for line in lines] == texts
    assert all(line["prediction"] in ("asyncio", "email", "logging", "xml") for line in lines)

    from radford.checkpoints import load

    model = load(checkpoint)  # a fine-tuned checkpoint rebuilds without its recipe
    assert isinstance(model, GPTFineTune) and model.tokenizer.vocab_size == model.hparams.vocab_size
