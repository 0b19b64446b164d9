"""GPT-1's BPE against transformers' OpenAIGPTTokenizerFast built from the same two files (OpenAI's release, in
../shared), on thousands of lines of real English; its file layouts told apart from GPT-2's and CLIP's by content;
the tokenizer a Hugging Face openai-gpt folder carries; fine-tuning's special tokens after its 40,478."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

import radford
from radford import registry
from radford.data.tasks import TaskData
from radford.errors import RadfordError
from radford.tokenizers import GPT1BPE, GPT2BPE, CLIPTokenizer, from_files, from_json
from radford.tokenizers.pretrained import Pretrained

transformers = pytest.importorskip("transformers")

KAREN = "Karen was assigned a roommate her first year of college."
SAMPLES = [
    KAREN,
    "The quick brown fox jumps over the lazy dog. It's 3:45pm; they're late, aren't they? We'll see.",
    "Café naïve FAÇADE, Ελληνικά, Русский, 日本語のテキスト, 中文字符 😀",  # accents stripped; CJK and emoji are <unk>
    "many   spaces\n\n\nnewlines\t\ttabs \t \n  trailing   ",
    "numbers 1234567890 3.14159 1,000,000 007 x2y #hashtag @user http://example.com/a?b=c",
    '"Quoted," she said -- and left... (Or did she?) [citation needed] {braces} <angle> & ampersand',
    "<unk> written in the text, and <UNK>",
    "control\x00 characters\x07 and \ufeff a BOM",
    "",
    " ",
]


@pytest.fixture(scope="module")
def release(shared_data: Path) -> Path:
    """OpenAI's release: encoder_bpe_40000.json + vocab_40000.bpe."""
    return shared_data / "assets" / "gpt1"


@pytest.fixture(scope="module")
def hf_folder(release: Path, tmp_path_factory) -> Path:
    """The same two files as a Hugging Face openai-gpt folder names them."""
    folder = tmp_path_factory.mktemp("openai-gpt")
    shutil.copy(release / "encoder_bpe_40000.json", folder / "vocab.json")
    shutil.copy(release / "vocab_40000.bpe", folder / "merges.txt")
    return folder


@pytest.fixture(scope="module")
def gpt1(release: Path) -> GPT1BPE:
    return GPT1BPE(str(release))


@pytest.fixture(scope="module")
def oracle(hf_folder: Path):
    return transformers.OpenAIGPTTokenizerFast.from_pretrained(hf_folder)


@pytest.fixture(scope="module")
def english(shared_data: Path) -> list[str]:
    """About 5,000 lines of real English: SST-2 movie-review sentences and Tiny Shakespeare."""
    with open(shared_data / "datasets" / "sst2" / "train_binary_sent.csv", encoding="utf-8", newline="") as file:
        reviews = [row["sentence"] for row in csv.DictReader(file)][:3000]
    play = (shared_data / "datasets" / "tinyshakespeare.txt").read_text(encoding="utf-8").splitlines()[:2000]
    return reviews + play


def test_matches_openai_gpt_tokenizer_fast(gpt1, oracle, english):
    texts = SAMPLES + english
    ids = gpt1.encode_batch(texts)
    assert ids == oracle(texts, add_special_tokens=False)["input_ids"]
    assert [gpt1.decode(row) for row in ids] == [oracle.decode(row) for row in ids]
    assert len(gpt1.encode(KAREN)) == 11 and gpt1.decode(gpt1.encode(KAREN)) == KAREN.lower()[:-1] + " ."


def test_vocabulary_is_gpt1s(gpt1):
    assert gpt1.vocab_size == 40478 and gpt1.eot_id is None and not gpt1.needs_training
    assert gpt1.encode("你") == [gpt1._trained().token_to_id("<unk>")] == [0]
    assert registry.lookup("tokenizers", "gpt1").load() is GPT1BPE  # `tokenizer: {class_path: gpt1, ...}`


def test_every_layout_is_gpt1s(gpt1, release, hf_folder, tmp_path):
    gpt1.save(tmp_path / "saved")
    paths = [
        release,
        release / "vocab_40000.bpe",
        release / "encoder_bpe_40000.json",
        hf_folder,
        hf_folder / "merges.txt",
        tmp_path / "saved",
        tmp_path / "saved" / "tokenizer.json",
    ]
    for path in paths:
        for loaded in (from_files(path), GPT1BPE(str(path))):
            assert type(loaded) is GPT1BPE, path
            assert loaded.fingerprint() == gpt1.fingerprint(), path  # the same pipeline, whatever the layout
    restored = from_json(gpt1.to_json())  # as a checkpoint stores it
    assert type(restored) is GPT1BPE and restored.encode_batch(SAMPLES) == gpt1.encode_batch(SAMPLES)


def test_told_apart_from_gpt2_and_clip_by_content(release, shared_data, tmp_path):
    """Hugging Face names GPT-2's, GPT-1's and CLIP's files alike: vocab.json + merges.txt."""
    gpt2 = tmp_path / "gpt2"
    gpt2.mkdir()
    shutil.copy(shared_data / "assets" / "gpt2" / "encoder.json", gpt2 / "vocab.json")
    shutil.copy(shared_data / "assets" / "gpt2" / "vocab.bpe", gpt2 / "merges.txt")
    assert type(from_files(gpt2)) is GPT2BPE
    with pytest.raises(RadfordError, match=r"vocab\.json holds a byte-level BPE .*not GPT-1's"):
        GPT1BPE(str(gpt2))
    with pytest.raises(RadfordError, match=r"encoder_bpe_40000\.json is a BPE whose tokens end words with </w>"):
        GPT2BPE(str(release))
    clip = tmp_path / "clip"
    CLIPTokenizer(str(shared_data / "assets" / "clip" / "bpe_simple_vocab_16e6.txt.gz")).save(clip)
    model = json.loads((clip / "tokenizer.json").read_text())["model"]
    (clip / "tokenizer.json").unlink()
    (clip / "vocab.json").write_text(json.dumps(model["vocab"]))
    (clip / "merges.txt").write_text("#version: 0.2\n" + "\n".join(" ".join(m) for m in model["merges"]) + "\n")
    assert type(from_files(clip)) is CLIPTokenizer
    with pytest.raises(RadfordError, match="holds CLIP's"):
        GPT1BPE(str(clip))


@pytest.fixture(scope="module")
def model_folder(hf_folder: Path, tmp_path_factory) -> Path:
    """A Hugging Face openai-gpt model folder (a tiny random model) with GPT-1's tokenizer files."""
    folder = tmp_path_factory.mktemp("model") / "openai-gpt"
    shutil.copytree(hf_folder, folder)
    config = transformers.OpenAIGPTConfig(vocab_size=40478, n_positions=16, n_embd=8, n_layer=1, n_head=2)
    transformers.OpenAIGPTLMHeadModel(config).save_pretrained(folder)
    return folder


def test_hf_openai_gpt_folder_carries_it(gpt1, model_folder):
    folder = model_folder
    model = radford.load(folder)
    assert type(model.tokenizer) is GPT1BPE and model.tokenizer.encode_batch(SAMPLES) == gpt1.encode_batch(SAMPLES)
    assert model.tokenizer.vocab_size == model.hparams.vocab_size == 40478
    pretrained = Pretrained(str(folder))  # fine-tuning's `tokenizer: {class_path: pretrained, ...}`
    assert pretrained.eot_id is None and pretrained.encode_batch(SAMPLES) == gpt1.encode_batch(SAMPLES)


def test_finetuning_special_tokens_follow_the_40478(oracle, model_folder, tmp_path):
    train = tmp_path / "train.jsonl"
    records = [{"text": KAREN, "label": 1}, {"text": "A dull, lifeless film.", "label": 0}]
    train.write_text("".join(json.dumps(record) + "\n" for record in records))
    data = TaskData(Pretrained(str(model_folder)), task="classification", train=str(train), batch_size=2)
    assert data.vocab_size == 40478
    batch = next(iter(data.train_dataloader()))  # shuffled: compare as a set of (sequence, label)
    start, extract = 40478, 40480  # [start] and [extract]: the first ids past GPT-1's vocabulary
    rows = zip(batch["input_ids"][:, 0], batch["lengths"][:, 0], batch["labels"], strict=True)
    seen = {(tuple(row[:length].tolist()), int(label)) for row, length, label in rows}
    expected = {
        ((start, *oracle(record["text"], add_special_tokens=False)["input_ids"], extract), record["label"])
        for record in records
    }
    assert seen == expected
