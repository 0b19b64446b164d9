"""CLIP's tokenizer against OpenAI's simple_tokenizer (re-implemented below, ftfy's NFC in place of ftfy) and against
transformers' CLIPTokenizer built from the same vocabulary; the small BPE learned from captions; serialization."""

from __future__ import annotations

import gzip
import html
import json
import unicodedata
from functools import lru_cache
from pathlib import Path

import pytest
import regex
import torch

from radford.errors import RadfordError
from radford.tokenizers import from_json
from radford.tokenizers.bpe import byte_characters
from radford.tokenizers.clip import EOT, SOT, CLIPTokenizer

SAMPLES = [
    "a photo of a cat.",
    "A Photo Of A DOG!!! on the beach, 2019",
    "The quick brown fox jumps over the lazy dog. It's 3:45pm; they're late, aren't they? We'll see.",
    "Café naïve façade, Ελληνικά, Русский, 日本語のテキスト, 中文字符, 한국어 😀🎉👍🏽",
    "e\u0301 composed and \u00e9 precomposed",  # NFC makes the first the second
    "many   spaces\n\n\nnewlines\t\ttabs \t \n  trailing   ",
    "numbers 1234567890 3.14159 1,000,000 007 x2y #hashtag @user http://example.com/a?b=c",
    "fish &amp; chips &quot;quoted&quot; &lt;b&gt; &amp;amp; double-escaped",
    "“curly” ‘quotes’ don’t",
    "<|startoftext|> and <|endoftext|> written in the text",
    "snake_case camelCase UPPER lower-case mixed123numbers",
    "",
    "   ",
]


@pytest.fixture(scope="module")
def vocabulary(shared_data: Path) -> Path:
    return shared_data / "assets" / "clip" / "bpe_simple_vocab_16e6.txt.gz"


@pytest.fixture(scope="module")
def clip(vocabulary: Path) -> CLIPTokenizer:
    return CLIPTokenizer(str(vocabulary))


class SimpleTokenizer:
    """OpenAI's clip/simple_tokenizer.py, with ftfy.fix_text replaced by its final step (NFC) and by its quote
    straightening, which is what it does to well-formed text."""

    def __init__(self, path: Path) -> None:
        merges = [tuple(merge.split()) for merge in openai_merges(path)]
        self.byte_encoder = openai_bytes_to_unicode()
        vocab = list(self.byte_encoder.values())
        vocab = vocab + [v + "</w>" for v in vocab] + ["".join(merge) for merge in merges] + [SOT, EOT]
        self.encoder = {token: i for i, token in enumerate(vocab)}
        self.bpe_ranks = {merge: i for i, merge in enumerate(merges)}
        self.cache = {SOT: SOT, EOT: EOT}
        self.pat = regex.compile(r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|"""
                                 r"""[^\s\p{L}\p{N}]+""", regex.IGNORECASE)

    def bpe(self, token: str) -> str:
        if token in self.cache:
            return self.cache[token]
        word = (*token[:-1], token[-1] + "</w>")
        while len(word) > 1:
            pairs = {(word[i], word[i + 1]) for i in range(len(word) - 1)}
            bigram = min(pairs, key=lambda pair: self.bpe_ranks.get(pair, float("inf")))
            if bigram not in self.bpe_ranks:
                break
            first, second = bigram
            new_word, i = [], 0
            while i < len(word):
                if i < len(word) - 1 and word[i] == first and word[i + 1] == second:
                    new_word.append(first + second)
                    i += 2
                else:
                    new_word.append(word[i])
                    i += 1
            word = tuple(new_word)
        self.cache[token] = " ".join(word)
        return self.cache[token]

    def encode(self, text: str) -> list[int]:
        text = unicodedata.normalize("NFC", html.unescape(html.unescape(text))).strip()
        text = regex.sub("[\u02bc\u2018-\u201b]", "'", regex.sub("[\u201c-\u201f]", '"', text))
        text = regex.sub(r"\s+", " ", text).strip().lower()
        ids = []
        for token in regex.findall(self.pat, text):
            token = "".join(self.byte_encoder[b] for b in token.encode("utf-8"))
            ids.extend(self.encoder[piece] for piece in self.bpe(token).split(" "))
        return ids


def openai_merges(path: Path) -> list[str]:
    with gzip.open(path) as file:
        return file.read().decode("utf-8").split("\n")[1 : 49152 - 256 - 2 + 1]


def openai_bytes_to_unicode() -> dict[int, str]:
    """OpenAI's function, verbatim in substance."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(2**8):
        if b not in bs:
            bs.append(b)
            cs.append(2**8 + n)
            n += 1
    return dict(zip(bs, map(chr, cs), strict=True))


@lru_cache(maxsize=1)
def stdlib_words() -> list[str]:
    """Varied English text that needs no download: lines of the standard library's documentation topics."""
    import pydoc_data.topics

    text = " ".join(pydoc_data.topics.topics.values())
    return [line for line in text.splitlines() if line.strip()][:2000]


def test_byte_characters_are_openais():
    assert byte_characters() == list(openai_bytes_to_unicode().values())


def test_vocabulary_is_clips(clip):
    assert clip.vocab_size == 49408
    assert clip._trained().token_to_id(SOT) == 49406 and clip.eot_id == 49407
    assert clip.encode("a photo of a cat") == [320, 1125, 539, 320, 2368]  # ids every CLIP user has seen


def test_matches_openai_simple_tokenizer(clip, vocabulary):
    reference = SimpleTokenizer(vocabulary)
    texts = SAMPLES + stdlib_words()
    assert clip.encode_batch(texts) == [reference.encode(text) for text in texts]


def test_matches_transformers(clip, vocabulary, tmp_path):
    transformers = pytest.importorskip("transformers")
    reference = SimpleTokenizer(vocabulary)
    (tmp_path / "vocab.json").write_text(json.dumps(reference.encoder))
    (tmp_path / "merges.txt").write_text("#version: 0.2\n" + "\n".join(openai_merges(vocabulary)) + "\n")
    hf = transformers.CLIPTokenizer.from_pretrained(tmp_path)
    # transformers does not unescape HTML or straighten quotes; the other samples must agree exactly.
    texts = [t for t in SAMPLES + stdlib_words() if not regex.search("[&\u02bc\u2018-\u201f]", t)]
    expected = hf(texts, max_length=77, truncation=True)["input_ids"]
    ours = clip.tokenize(texts)
    # transformers pads with <|endoftext|> when asked to; OpenAI and radford pad with 0.
    for row, ids in zip(ours.tolist(), expected, strict=True):
        assert row[: len(ids)] == ids and set(row[len(ids) :]) <= {0}
    # The same vocabulary read from the folder transformers writes gives the same ids.
    assert CLIPTokenizer(str(tmp_path)).encode_batch(texts) == clip.encode_batch(texts)


def test_tokenize_pads_and_truncates_as_open_clip(clip):
    ids = clip.tokenize(["a photo of a cat", "word " * 100], context_length=10)
    assert ids.shape == (2, 10) and ids.dtype == torch.long
    assert ids[0].tolist() == [49406, 320, 1125, 539, 320, 2368, 49407, 0, 0, 0]
    assert ids[1, 0] == 49406 and ids[1, -1] == 49407  # truncated, still ends with <|endoftext|>
    assert (ids.argmax(-1) == torch.tensor([6, 9])).all()  # where the model reads the features
    with pytest.raises(RadfordError, match="context_length"):
        clip.tokenize(["x"], context_length=1)


def test_decode(clip):
    assert clip.decode(clip.encode("A photo of a CAT!")).strip() == "a photo of a cat !"


def test_learned_vocabulary_from_captions():
    captions = [f"a {size} {colour} {shape} on the {side}" for size in ("small", "large")
                for colour in ("red", "green", "blue") for shape in ("circle", "square") for side in ("left", "right")]
    tokenizer = CLIPTokenizer(vocab_size=560)
    assert tokenizer.needs_training
    with pytest.warns(UserWarning, match="learned"):
        tokenizer.train(captions * 3)
    # Every word of the captions is one token; the special tokens are the two largest ids, as in OpenAI's vocabulary.
    words = [tokenizer.decode([i]) for i in tokenizer.encode("a small red circle")]
    assert words == ["a ", "small ", "red ", "circle "]
    assert tokenizer.eot_id == tokenizer.vocab_size - 1
    # Any text still encodes: every byte is in the vocabulary, alone and ending a word.
    assert tokenizer.decode(tokenizer.encode("zebra über 42")) == "zebra über 4 2 "


def test_survives_a_checkpoint(clip):
    restored = from_json(clip.to_json())
    assert isinstance(restored, CLIPTokenizer)
    texts = SAMPLES[:6]
    assert restored.encode_batch(texts) == clip.encode_batch(texts)
    assert torch.equal(restored.tokenize(texts), clip.tokenize(texts))


def test_bad_inputs(tmp_path):
    with pytest.raises(RadfordError, match="too small"):
        CLIPTokenizer(vocab_size=100)
    with pytest.raises(RadfordError, match="no CLIP vocabulary"):
        CLIPTokenizer(str(tmp_path))
    (tmp_path / "broken.txt.gz").write_bytes(b"not gzip")
    with pytest.raises(RadfordError, match="cannot read CLIP's vocabulary"):
        CLIPTokenizer(str(tmp_path / "broken.txt.gz"))
    assert not isinstance(from_json(_byte_level_json()), CLIPTokenizer)  # a byte-level BPE without CLIP's tokens


def _byte_level_json() -> str:
    from radford.tokenizers import BPE

    tokenizer = BPE(vocab_size=257)
    tokenizer.train(["some text to learn from"] * 10)
    return tokenizer.to_json()
