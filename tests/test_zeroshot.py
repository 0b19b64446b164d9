"""Zero-shot evaluation: perplexity and bits per byte of whole files, LAMBADA last-word accuracy, the CLI."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader
from transformers import GPT2Config, GPT2LMHeadModel, OpenAIGPTConfig, OpenAIGPTLMHeadModel

from radford.checkpoints import RecordForLoad
from radford.data.lambada import LambadaData, collate, encode_passage, read_passages, split_last_word
from radford.data.text import StridedWindows, TextData
from radford.errors import RadfordError
from radford.models.common import IGNORE_INDEX
from radford.models.gpt import GPT1
from radford.models.zeroshot import ZeroShot, token_bytes
from radford.tokenizers import BPE, Char
from tests.helpers import error_line, quiet_trainer, radford_cli

# Prose with two-, three- and four-byte characters, so that some BPE tokens hold part of a character.
TEXT = (
    "The quick brown fox jumps over the lazy dog. Le cœur a ses raisons que la raison ne connaît point. "
    "日本語のテキスト 😀 and the dog sleeps.\n"
)
PASSAGES = [
    "the dog sat on the mat and the cat sat on the dog",
    "she opened the door\nand saw the garden",
    "a quick brown fox jumps over the lazy dog",
]
HF_MODELS = {"gpt2": (GPT2Config, GPT2LMHeadModel), "openai-gpt": (OpenAIGPTConfig, OpenAIGPTLMHeadModel)}


# -- fixtures and helpers -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bpe() -> BPE:
    tokenizer = BPE(vocab_size=300, min_frequency=1)
    tokenizer.train([TEXT * 3, *PASSAGES])
    return tokenizer


def save_hf_model(model_type: str, tokenizer: BPE, folder: Path) -> Path:
    """A Hugging Face folder of a tiny random GPT-2 or OpenAI GPT (GPT-1) with the tokenizer's tokenizer.json."""
    config_class, model_class = HF_MODELS[model_type]
    torch.manual_seed(0)
    # A wide init, so the predictions are far from uniform and a wrong context shows in the loss.
    config = config_class(
        vocab_size=tokenizer.vocab_size, n_positions=128, n_embd=32, n_layer=2, n_head=2, initializer_range=0.3
    )
    model_class(config).save_pretrained(folder)
    tokenizer.save(folder)
    return folder


@pytest.fixture(scope="module", params=list(HF_MODELS))
def hf_folder(request, bpe: BPE, tmp_path_factory) -> Path:
    return save_hf_model(request.param, bpe, tmp_path_factory.mktemp(request.param))


@pytest.fixture(scope="module")
def gpt2_folder(bpe: BPE, tmp_path_factory) -> Path:
    """One family is enough for the command line, which starts a process (seconds) per test."""
    return save_hf_model("gpt2", bpe, tmp_path_factory.mktemp("gpt2"))


def hf_model(folder: Path) -> nn.Module:
    model_type = json.loads((folder / "config.json").read_text())["model_type"]
    return HF_MODELS[model_type][1].from_pretrained(folder).eval()


def run_test(model: ZeroShot, data: L.LightningDataModule) -> dict[str, float]:
    [results] = quiet_trainer().test(model, datamodule=data, verbose=False)
    return results


@pytest.fixture
def text_file(tmp_path: Path) -> Path:
    path = tmp_path / "sample.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


def write_jsonl(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# -- bytes per token --------------------------------------------------------------------------------------


def test_token_bytes_add_up_to_the_text(bpe: BPE) -> None:
    ids = bpe.encode(TEXT)
    assert "\ufffd" in [bpe.decode([i]) for i in ids]  # some token holds part of a character
    sizes = token_bytes(bpe)
    assert sizes.shape == (bpe.vocab_size,)
    assert int(sizes[ids].sum()) == len(TEXT.encode("utf-8"))
    assert sizes[bpe.eot_id] == 0  # the separator TextData adds is no text

    chars = Char()
    chars.train([TEXT])
    assert int(token_bytes(chars)[chars.encode(TEXT)].sum()) == len(TEXT.encode("utf-8"))


# -- windows over a whole stream ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("length", "block_size", "stride"), [(33, 8, None), (35, 8, None), (35, 8, 3), (5, 8, None), (40, 8, 8), (40, 8, 1)]
)
def test_strided_windows_score_every_target_once(length: int, block_size: int, stride: int | None) -> None:
    tokens = np.arange(length, dtype=np.uint16) + 100
    windows = StridedWindows(tokens, block_size, stride)
    scored = []
    for x, y in (windows[i] for i in range(len(windows))):
        assert len(x) == len(y) == min(block_size, length - 1)
        # Inputs are a contiguous run of the stream and labels the next tokens, where scored.
        assert torch.equal(x, torch.arange(int(x[0]), int(x[0]) + len(x)))
        kept = y != IGNORE_INDEX
        assert torch.equal(y[kept], x[kept] + 1) and kept[-1]
        # Only a window's last targets are scored, and with a stride each sees block_size - stride tokens or more.
        first = int(kept.int().argmax())
        assert kept[first:].all()
        if scored and stride:
            assert first >= block_size - stride
        scored += y[kept].tolist()
    assert scored == tokens[1:].tolist()  # every target once, in order
    if stride is None and (length - 1) % block_size == 0:
        assert len(windows) == (length - 1) // block_size  # disjoint windows, nothing ignored
        assert all((windows[i][1] != IGNORE_INDEX).all() for i in range(len(windows)))


def test_text_data_tests_the_whole_stream(text_file: Path, bpe: BPE, tmp_path: Path) -> None:
    data = TextData(
        str(text_file), tokenizer=bpe, block_size=8, batch_size=4, test_split="all", cache_dir=str(tmp_path)
    )
    data.prepare_data()  # few tokens are enough to evaluate: no check for training splits
    labels = torch.cat([y for _, y in data.test_dataloader()])
    stream = bpe.encode(TEXT) + [bpe.eot_id]
    assert labels[labels != IGNORE_INDEX].tolist() == stream[1:]
    held_out = TextData(str(text_file), tokenizer=bpe, block_size=8, cache_dir=str(tmp_path))
    with pytest.raises(RadfordError, match="too few for windows"):
        held_out.prepare_data()


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"test_split": "everything"}, "test_split must be 'held_out' or 'all', got 'everything'"),
        ({"test_stride": 4}, "test_stride 4 needs test_split 'all'"),
        ({"test_split": "all", "test_stride": 9}, "1 <= test_stride <= block_size"),
        ({"test_split": "all", "test_stride": 0}, "1 <= test_stride <= block_size"),
    ],
)
def test_bad_test_settings(settings: dict, message: str, tmp_path: Path) -> None:
    with pytest.raises(RadfordError, match=message):
        TextData("stdlib", tokenizer=Char(), block_size=8, cache_dir=str(tmp_path), **settings)


# -- perplexity and bits per byte through ZeroShot ------------------------------------------------------------


def window_start(target: int, block_size: int, stride: int, last: int) -> int:
    """Where the window that scores ``target`` starts: the documented rule, written independently."""
    if target <= block_size:
        return 0
    end = min(block_size + math.ceil((target - block_size) / stride) * stride, last)
    return end - block_size


def direct_nats(logits_of: Callable[[Tensor], Tensor], stream: list[int], block_size: int, stride: int | None) -> float:
    """The NLL of every target, one at a time, each with the context its window gives it."""
    last, nats = len(stream) - 1, 0.0
    with torch.no_grad():
        for target in range(1, len(stream)):
            context = stream[window_start(target, block_size, stride or block_size, last) : target]
            nats -= logits_of(torch.tensor([context]))[0, -1].log_softmax(-1)[stream[target]].item()
    return nats


def assert_scores(results: dict[str, float], nats: float, stream: list[int], tokenizer: BPE) -> None:
    targets = len(stream) - 1
    # Every byte of the file but the first token's is predicted; <|endoftext|> at the end stands for none.
    num_bytes = len(TEXT.encode("utf-8")) - len(tokenizer.decode(stream[:1]).encode("utf-8"))
    assert results["test_loss"] == pytest.approx(nats / targets, rel=1e-5)
    assert results["test_ppl"] == pytest.approx(math.exp(nats / targets), rel=1e-5)
    assert results["test_bpb"] == pytest.approx(nats / math.log(2) / num_bytes, rel=1e-5)


@pytest.mark.parametrize(("block_size", "stride"), [(128, None), (16, None), (16, 5)])
def test_ppl_and_bpb_match_a_direct_loop(
    block_size: int, stride: int | None, hf_folder: Path, bpe: BPE, text_file: Path, tmp_path: Path
) -> None:
    data = TextData(
        str(text_file),
        tokenizer=bpe,
        block_size=block_size,
        batch_size=3,
        test_split="all",
        test_stride=stride,
        cache_dir=str(tmp_path),
    )
    results = run_test(ZeroShot(str(hf_folder), vocab_size=bpe.vocab_size), data)

    stream = bpe.encode(TEXT) + [bpe.eot_id]
    assert (len(stream) > block_size) == (block_size == 16)  # windows cut the text, or one window holds it all
    reference = hf_model(hf_folder)  # Hugging Face's own model
    assert_scores(results, direct_nats(lambda ids: reference(ids).logits, stream, block_size, stride), stream, bpe)


def test_radford_gpt1_checkpoint(bpe: BPE, text_file: Path, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(TEXT * 20, encoding="utf-8")
    torch.manual_seed(0)
    model = GPT1(vocab_size=bpe.vocab_size, block_size=32, n_layer=2, n_head=2, n_embd=32, dropout=0.0)
    with torch.no_grad():  # far from uniform predictions, so that a wrong context shows in the loss
        for param in model.parameters():
            param.normal_(std=0.3)
    trainer = quiet_trainer(max_steps=1, limit_val_batches=0, callbacks=[RecordForLoad()])
    # One step at the warmup's learning rate of 0: a checkpoint as `radford fit` writes, of the weights above.
    trainer.fit(model, TextData(str(corpus), tokenizer=bpe, block_size=16, batch_size=2, cache_dir=str(tmp_path)))
    trainer.save_checkpoint(tmp_path / "gpt1.ckpt")

    data = TextData(str(text_file), tokenizer=bpe, block_size=16, test_split="all", cache_dir=str(tmp_path))
    results = run_test(ZeroShot(str(tmp_path / "gpt1.ckpt"), vocab_size=bpe.vocab_size), data)
    stream = bpe.encode(TEXT) + [bpe.eot_id]
    assert_scores(results, direct_nats(model.eval(), stream, 16, None), stream, bpe)


def test_vocabulary_mismatch_is_one_line(hf_folder: Path, bpe: BPE) -> None:
    with pytest.raises(RadfordError, match=f"vocab_size {bpe.vocab_size + 1}.*{bpe.vocab_size}") as error:
        ZeroShot(str(hf_folder), vocab_size=bpe.vocab_size + 1)
    assert "\n" not in str(error.value)


def test_zeroshot_needs_the_tokenizer_of_its_data(hf_folder: Path, bpe: BPE) -> None:
    windows = StridedWindows(np.array(bpe.encode(TEXT)), 16)
    trainer = quiet_trainer()
    with pytest.raises(RadfordError, match="data module with a tokenizer"):
        trainer.test(ZeroShot(str(hf_folder), vocab_size=bpe.vocab_size), dataloaders=DataLoader(windows))


# -- LAMBADA ------------------------------------------------------------------------------------------------


def test_split_last_word() -> None:
    assert split_last_word("He said hello") == ("He said", " hello")
    assert split_last_word("the end of it.  \n") == ("the end of", " it.")
    # Only a space joins the word (GPT-2's BPE merges " word"); a newline stays with the context.
    assert split_last_word("she opened the door\nand saw") == ("she opened the door\nand", " saw")
    assert split_last_word("first line\nlast") == ("first line\n", "last")
    assert split_last_word("tab\tword") == ("tab\t", "word")
    for one_word in ("word", "  word  ", ""):
        with pytest.raises(ValueError, match="one word"):
            split_last_word(one_word)


def test_passages_become_rows_scoring_the_target(bpe: BPE) -> None:
    context, target = bpe.encode("the cat sat on"), bpe.encode(" the")
    x, y = encode_passage(context, target, block_size=64)
    assert x.tolist() == context + target[:-1]
    assert y[y != IGNORE_INDEX].tolist() == target and (y[: len(context) - 1] == IGNORE_INDEX).all()
    assert (y[-len(target) :] != IGNORE_INDEX).all()
    short_x, short_y = encode_passage(context, target, block_size=3)  # the context's start is cut
    assert short_x.tolist() == (context + target)[-4:-1] and short_y[-len(target) :].tolist() == target

    batch = collate([(x, y), (short_x, short_y)])
    assert batch["input_ids"].shape == batch["labels"].shape == (2, len(x))
    assert torch.equal(batch["input_ids"][1, :3], short_x) and (batch["labels"][1, 3:] == IGNORE_INDEX).all()


def test_lambada_loader(bpe: BPE, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "lambada.jsonl", [json.dumps({"text": t}) for t in PASSAGES] + [""])
    data = LambadaData(str(path), bpe, batch_size=2)
    assert data.vocab_size == bpe.vocab_size
    batches = list(data.test_dataloader())
    assert [len(b["input_ids"]) for b in batches] == [2, 1]
    targets = [row[row != IGNORE_INDEX].tolist() for b in batches for row in b["labels"]]
    assert targets == [bpe.encode(" dog"), bpe.encode(" garden"), bpe.encode(" dog")]


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (None, "LAMBADA file .*missing.jsonl.* not found"),
        (['{"text": "a b c"}', "{not json"], "line 2: not JSON"),
        (['{"text": "a b c"}', "", '{"passage": "a b c"}'], 'line 3: no "text" field'),
        (['{"text": "a b c"}', '["a b c"]'], "line 2: expected a JSON object, got list"),
        (['{"text": "a b c"}', '{"text": 3}'], 'line 2: no "text" field'),
        (['{"text": "a b c"}', '{"text": "  lonely "}'], "line 2: passage 'lonely' has one word"),
        ([""], "holds no passages"),
    ],
)
def test_bad_lambada_files(lines: list[str] | None, message: str, tmp_path: Path) -> None:
    path = tmp_path / "missing.jsonl" if lines is None else write_jsonl(tmp_path / "bad.jsonl", lines)
    with pytest.raises(RadfordError, match=message) as error:
        read_passages(path)
    assert "\n" not in str(error.value)


def test_lambada_needs_a_trained_tokenizer(tmp_path: Path) -> None:
    with pytest.raises(RadfordError, match="untrained BPE"):
        LambadaData(str(tmp_path / "x.jsonl"), BPE())


class Rigged(nn.Module):
    """Logits of 10 on one token per position: the passage's next token, that plus ``shift``, and for the
    positions in ``miss`` (passage, target index) the wrong one. Causal: a position reads its prefix only."""

    def __init__(
        self, rows: list[list[int]], vocab_size: int, shift: int = 0, miss: tuple[int, int] | None = None
    ) -> None:
        super().__init__()
        self.vocab_size, self.shift = vocab_size, shift
        self.next = {tuple(row[: t + 1]): row[t + 1] for row in rows for t in range(len(row) - 1)}
        if miss is not None:
            passage, index = miss
            prefix = tuple(rows[passage][:index])
            self.next[prefix] = (self.next[prefix] + 1) % vocab_size

    def forward(self, input_ids: Tensor) -> Tensor:
        logits = torch.zeros(*input_ids.shape, self.vocab_size)
        for b, row in enumerate(input_ids.tolist()):
            for t in range(len(row)):
                token = self.next.get(tuple(row[: t + 1]), 0)
                logits[b, t, (token + self.shift) % self.vocab_size] = 10.0
        return logits


def test_lambada_accuracy_and_target_perplexity(hf_folder: Path, bpe: BPE, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "lambada.jsonl", [json.dumps({"text": t}) for t in PASSAGES])
    pairs = [split_last_word(t) for t in PASSAGES]
    rows = [bpe.encode(context) + bpe.encode(target) for context, target in pairs]
    target_tokens = sum(len(bpe.encode(target)) for _, target in pairs)
    multi = next(i for i, (_, target) in enumerate(pairs) if len(bpe.encode(target)) > 1)
    V = bpe.vocab_size
    right = math.exp(10) / (math.exp(10) + V - 1)  # the probability a rigged model gives the token it picks
    wrong = 1 / (math.exp(10) + V - 1)

    model = ZeroShot(str(hf_folder), vocab_size=V)
    cases = [
        (Rigged(rows, V), 1.0, 1 / right),
        (Rigged(rows, V, shift=1), 0.0, 1 / wrong),
        # One wrong token of one multi-token word fails that passage, though its others are right.
        (
            Rigged(rows, V, miss=(multi, len(rows[multi]) - 1)),
            2 / 3,
            math.exp(-((target_tokens - 1) * math.log(right) + math.log(wrong)) / target_tokens),
        ),
    ]
    for rigged, accuracy, perplexity in cases:
        model.model = rigged
        results = run_test(model, LambadaData(str(path), bpe, batch_size=2))
        assert results["test_lambada_acc"] == pytest.approx(accuracy)
        assert results["test_lambada_ppl"] == pytest.approx(perplexity, rel=1e-4)
        assert "test_ppl" not in results


# -- the command line ---------------------------------------------------------------------------------------


def test_cli_reports_ppl_and_bpb(gpt2_folder: Path, bpe: BPE, text_file: Path, tmp_path: Path) -> None:
    expected = run_test(
        ZeroShot(str(gpt2_folder), vocab_size=bpe.vocab_size),
        TextData(
            str(text_file),
            tokenizer=bpe,
            block_size=16,
            batch_size=3,
            test_split="all",
            cache_dir=str(tmp_path / "cache"),
        ),
    )
    result = radford_cli(
        "test",
        "--recipe",
        "gpt2-zeroshot",
        "--model.init_args.pretrained",
        str(gpt2_folder),
        "--data.init_args.tokenizer.init_args.path",
        str(gpt2_folder),
        "--data.init_args.sources",
        f"[{text_file}]",
        "--data.init_args.block_size",
        "16",
        "--data.init_args.batch_size",
        "3",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "test_ppl" in result.stdout and "test_bpb" in result.stdout
    with open(tmp_path / "runs" / "gpt2-zeroshot" / "test" / "metrics.csv") as file:
        [logged] = [row for row in csv.DictReader(file) if row.get("test_bpb")]
    for name in ("test_loss", "test_ppl", "test_bpb"):
        assert float(logged[name]) == pytest.approx(expected[name], rel=1e-5)


def test_cli_vocabulary_mismatch_is_one_line(gpt2_folder: Path, text_file: Path, tmp_path: Path) -> None:
    result = radford_cli(
        "test",
        "--recipe",
        "gpt2-zeroshot",
        "--model.init_args.pretrained",
        str(gpt2_folder),
        "--data.init_args.tokenizer",
        "char",
        "--data.init_args.sources",
        f"[{text_file}]",
        cwd=tmp_path,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("radford: error: vocab_size") and str(gpt2_folder) in line


def test_windows_longer_than_the_context_are_refused_before_the_data_is_prepared(
    gpt2_folder: Path, bpe: BPE, tmp_path: Path, capsys, monkeypatch
) -> None:
    """Found when the classes are built, in one line naming both values: not after the corpus is tokenized, as
    ``input length 256 exceeds block_size 128`` at the first batch."""
    assert ZeroShot(str(gpt2_folder), vocab_size=bpe.vocab_size, sequence_length=128).model.hparams.block_size == 128
    monkeypatch.chdir(tmp_path)
    text = write_jsonl(tmp_path / "long.txt", [TEXT] * 40)  # thousands of tokens: windows of 256 would be full
    cache = tmp_path / "cache"
    line = error_line(
        capsys,
        "test",
        "--recipe",
        "gpt2-zeroshot",
        f"--model.init_args.pretrained={gpt2_folder}",
        f"--data.init_args.tokenizer.init_args.path={gpt2_folder}",
        f"--data.init_args.sources=[{text}]",
        "--data.init_args.block_size=256",
        f"--data.init_args.cache_dir={cache}",
    )
    assert line == (
        f"radford: error: the data's block_size 256 exceeds 128, the context (block_size) of {gpt2_folder}: "
        "set the data's block_size to 128 or less (--data.init_args.block_size 128)"
    )
    assert not cache.exists() or not any(cache.rglob("*"))  # nothing tokenized
    assert not (tmp_path / "runs").exists()
