"""Tokenizers: GPT-2's BPE against tiktoken, trained BPE and Char, loading and serialization."""

import os
import shutil
from pathlib import Path

import pytest

from radford.errors import RadfordError
from radford.tokenizers import BPE, GPT1BPE, GPT2BPE, Char, CLIPTokenizer, Tokenizer, from_files, from_json
from radford.tokenizers.bytes import ByteTokenizer

SAMPLES = [
    "The quick brown fox jumps over the lazy dog. It's 3:45pm; they're late, aren't they? We'll see.",
    'def f(x: int) -> int:\n\treturn x ** 2  # square\n\nprint(f(12), {"a": [1, 2.5e-3]})\n',
    "Café naïve façade, Ελληνικά, Русский, 日本語のテキスト, 中文字符, 한국어 😀🎉👍🏽 e\u0301",
    "many   spaces\n\n\nnewlines\t\ttabs \t \n  trailing   ",
    "numbers 1234567890 3.14159 1,000,000 007 x2y",
    "first document<|endoftext|>second document <|endoftext|>\n<|endoftext|>",
    "",
    " ",
    "\n",
]


@pytest.fixture(scope="module")
def gpt2_files(shared_data: Path) -> Path:
    return shared_data / "assets" / "gpt2"


@pytest.fixture(scope="module")
def shakespeare(shared_data: Path) -> str:
    return (shared_data / "datasets" / "tinyshakespeare.txt").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def gpt2(gpt2_files: Path) -> GPT2BPE:
    return GPT2BPE(str(gpt2_files))


@pytest.fixture(scope="module")
def char(shakespeare: str) -> Char:
    tokenizer = Char()
    tokenizer.train([shakespeare])
    return tokenizer


@pytest.fixture(scope="module")
def python_source() -> list[str]:
    """About 300 KB of the standard library's own source: varied text that needs no download."""
    texts, size = [], 0
    for file in sorted(Path(os.__file__).parent.glob("*.py")):
        texts.append(file.read_text(encoding="utf-8", errors="replace"))
        size += len(texts[-1])
        if size > 300_000:
            break
    return texts


def trained_bpe(texts: list[str], vocab_size: int) -> BPE:
    tokenizer = BPE(vocab_size=vocab_size)
    tokenizer.train(texts)
    return tokenizer


@pytest.fixture(scope="module")
def bpe(python_source: list[str]) -> BPE:
    return trained_bpe(python_source, 1000)


def test_gpt2_matches_tiktoken(gpt2: GPT2BPE, gpt2_files: Path, shakespeare: str) -> None:
    tiktoken = pytest.importorskip("tiktoken")
    from tiktoken.load import data_gym_to_mergeable_bpe_ranks
    from tiktoken_ext.openai_public import ENDOFTEXT, r50k_pat_str

    ranks = data_gym_to_mergeable_bpe_ranks(
        vocab_bpe_file=str(gpt2_files / "vocab.bpe"), encoder_json_file=str(gpt2_files / "encoder.json")
    )
    reference = tiktoken.Encoding(
        name="gpt2", pat_str=r50k_pat_str, mergeable_ranks=ranks, special_tokens={ENDOFTEXT: 50256}
    )
    assert gpt2.vocab_size == 50257 and gpt2.eot_id == 50256 and not gpt2.needs_training
    for text in [*SAMPLES, shakespeare[:200_000]]:
        ids = gpt2.encode(text)
        assert ids == reference.encode(text, allowed_special="all"), text[:80]
        assert gpt2.decode(ids) == text
    assert gpt2.encode("<|endoftext|>") == [50256]


def test_from_files_layouts(gpt2: GPT2BPE, gpt2_files: Path, tmp_path: Path) -> None:
    expected = gpt2.encode(SAMPLES[0])
    hf = tmp_path / "hf"
    hf.mkdir()
    shutil.copy(gpt2_files / "encoder.json", hf / "vocab.json")
    shutil.copy(gpt2_files / "vocab.bpe", hf / "merges.txt")
    gpt2.save(tmp_path / "saved")
    for path in [gpt2_files, gpt2_files / "vocab.bpe", hf, hf / "merges.txt", tmp_path / "saved" / "tokenizer.json"]:
        loaded = from_files(path)
        assert loaded.encode(SAMPLES[0]) == expected, path
        assert (loaded.vocab_size, loaded.eot_id) == (50257, 50256), path
        assert loaded.fingerprint() == gpt2.fingerprint(), path  # same behaviour, whatever the file layout
    # A byte-level vocabulary + merges pair is GPT-2's; a tokenizer.json comes back by its model (a BPE).
    assert isinstance(from_files(hf), GPT2BPE) and isinstance(from_files(tmp_path / "saved"), BPE)


def test_from_files_missing_names_path_and_layouts(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-tokenizer"
    with pytest.raises(RadfordError, match="no-such-tokenizer.*tokenizer.json.*encoder.json"):
        from_files(missing)
    (tmp_path / "encoder.json").write_text("{}")  # half a pair is not a tokenizer
    with pytest.raises(RadfordError, match="vocab.bpe"):
        from_files(tmp_path)


def test_from_files_malformed_is_a_radford_error(tmp_path: Path) -> None:
    (tmp_path / "tokenizer.json").write_text("{not json")
    with pytest.raises(RadfordError, match="tokenizer.json"):
        from_files(tmp_path)


def test_bpe_trains_to_requested_size(bpe: BPE, python_source: list[str]) -> None:
    assert bpe.vocab_size == 1000 and not bpe.needs_training
    assert bpe.eot_id is not None and bpe.encode("a<|endoftext|>b")[1] == bpe.eot_id
    for text in [*SAMPLES, python_source[0][:5000]]:  # unseen scripts too: every byte is in the alphabet
        assert bpe.decode(bpe.encode(text)) == text
    # Merges learned from Python make Python short: far fewer tokens than bytes.
    assert len(bpe.encode(python_source[0])) < len(python_source[0].encode()) / 2


def test_bpe_fingerprint(bpe: BPE, python_source: list[str]) -> None:
    untrained = BPE(vocab_size=1000)
    assert untrained.needs_training
    assert untrained.fingerprint() == BPE(vocab_size=1000).fingerprint()
    assert untrained.fingerprint() != BPE(vocab_size=2000).fingerprint()
    assert untrained.fingerprint() != BPE(vocab_size=1000, min_frequency=3).fingerprint()
    assert bpe.fingerprint() != untrained.fingerprint()
    assert trained_bpe(python_source, 600).fingerprint() != bpe.fingerprint()


def test_untrained_and_bad_settings_raise() -> None:
    with pytest.raises(RadfordError, match="not trained"):
        BPE().encode("hello")
    with pytest.raises(RadfordError, match="not trained"):
        Char().to_json()
    with pytest.raises(RadfordError, match="vocab_size 100 .*257"):
        BPE(vocab_size=100)
    with pytest.raises(RadfordError, match="empty corpus"):
        Char().train([""])


def test_char_shakespeare(char: Char, shakespeare: str) -> None:
    assert char.vocab_size == 65 and char.eot_id is None
    ids = char.encode(shakespeare[:10_000])
    assert len(ids) == 10_000 and max(ids) < 65
    assert char.encode("\n") == [0]  # sorted characters: newline comes first, as in nanoGPT
    assert char.decode(char.encode(shakespeare)) == shakespeare


def test_char_unseen_character_names_it(char: Char) -> None:
    with pytest.raises(RadfordError, match="'é'.*65 characters"):
        char.encode("Café")
    with pytest.raises(RadfordError, match="'😀'"):
        char.encode_batch(["fine", "not 😀 fine"])


def texts_for(kind: str, request: pytest.FixtureRequest) -> list[str]:
    """Texts a tokenizer of ``kind`` can encode; only Char needs the shared data (it knows Shakespeare's
    characters only), so the BPEs are tested without it."""
    if kind == "char":
        play = request.getfixturevalue("shakespeare")
        return [play[i : i + 3000] for i in range(0, 60_000, 3000)] + [""]
    return [*SAMPLES, *(text[:3000] for text in request.getfixturevalue("python_source"))]


@pytest.mark.parametrize("kind", ["gpt2", "bpe", "char"])
def test_from_json_round_trip(kind: str, request: pytest.FixtureRequest) -> None:
    original: Tokenizer = request.getfixturevalue(kind)
    texts = texts_for(kind, request)
    restored = from_json(original.to_json())
    assert restored.encode_batch(texts) == original.encode_batch(texts)
    assert (restored.vocab_size, restored.eot_id) == (original.vocab_size, original.eot_id)
    assert restored.decode(original.encode(texts[0])) == texts[0]
    assert restored.fingerprint() == original.fingerprint()
    assert not restored.needs_training


def test_from_json_rejects_garbage() -> None:
    with pytest.raises(RadfordError, match="not a tokenizer.json"):
        from_json('{"hello": "world"}')


@pytest.mark.parametrize("kind", ["gpt2", "bpe", "char"])
def test_encode_batch_equals_encode(kind: str, request: pytest.FixtureRequest) -> None:
    tokenizer: Tokenizer = request.getfixturevalue(kind)
    texts = texts_for(kind, request)
    batch = tokenizer.encode_batch(texts)
    assert len(batch) == len(texts) and batch[0]
    assert batch == [tokenizer.encode(text) for text in texts]


def test_save_then_load_char(char: Char, tmp_path: Path) -> None:
    char.save(tmp_path / "char.json")
    loaded = from_files(tmp_path / "char.json")
    assert isinstance(loaded, Char)
    assert loaded.encode("Hello,\nworld!") == char.encode("Hello,\nworld!")


def test_fixed_vocabulary_ignores_training(gpt2: GPT2BPE) -> None:
    before = gpt2.fingerprint()
    gpt2.train(["some text that would change a trainable vocabulary"])
    assert gpt2.fingerprint() == before


@pytest.fixture(scope="module")
def gpt1(shared_data: Path) -> GPT1BPE:
    return GPT1BPE(str(shared_data / "assets" / "gpt1"))


@pytest.fixture(scope="module")
def clip() -> CLIPTokenizer:
    tokenizer = CLIPTokenizer(vocab_size=520)
    tokenizer.train(["a photo of a cat", "a photo of a dog"] * 5)
    return tokenizer


@pytest.mark.parametrize("kind", ["gpt2", "gpt1", "bpe", "char", "clip", "bytes"])
def test_lone_surrogate_is_one_line_naming_it(kind: str, request: pytest.FixtureRequest) -> None:
    """A str holding half a UTF-16 pair (what errors="surrogateescape" makes of a bad byte) is not text."""
    tokenizer: Tokenizer = ByteTokenizer() if kind == "bytes" else request.getfixturevalue(kind)
    cases = [
        (tokenizer.encode, "to be \ud800 or not", r"'\\ud800' \(U\+D800\) at character 6"),
        (tokenizer.encode_batch, ["to be", "or\udfff"], r"'\\udfff' \(U\+DFFF\) at character 2"),
    ]
    for encode, text, where in cases:
        with pytest.raises(RadfordError, match="lone surrogate " + where) as error:
            encode(text)
        assert "\n" not in str(error.value)
