"""CLIP's tokenizer against OpenAI's simple_tokenizer (transcribed below, with ftfy as OpenAI's uses it), open_clip's
(where it is installed) and transformers' CLIPTokenizer built from the same vocabulary, on English, tricky Unicode and
random Unicode; the small BPE learned from captions; serialization."""

from __future__ import annotations

import gzip
import html
import importlib.util
import json
import os
from functools import lru_cache
from pathlib import Path
from types import ModuleType

import ftfy
import pytest
import regex
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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
# Text that ftfy's fixes, Python's lower-casing and OpenAI's case-blind regex change.
TRICKY = [
    "ﬁne ﬂour, ﬃ and ﬄ",  # Latin ligatures
    "ＡＢＣ\u3000ｆｕｌｌ－ｗｉｄｔｈ\u3000１２３！",  # full-width forms and the ideographic space
    "你好，世界！こんにちは。「引用」",  # CJK full-width punctuation
    "ΣΑΣ ΟΔΥΣΣΕΥΣ σοφός",  # final sigma, which Python's lower() knows
    "bell\x07 escape\x1b[31mred\x1b[0m nul\x00 del\x7f",  # control characters, a terminal colour code
    "\ufeffbyte order mark first",
    "<|ENDOFTEXT|> and <|StartOfText|> in capitals",
    "mojibake: cafÃ© and â€œquotedâ€\x9d",  # UTF-8 read as Windows-1252
    "separators \x1c\x1d\x1e\x1f between",  # whitespace to Python, not to OpenAI's regex
    "next line\x85 line separator\u2028 paragraph\u2029 end",
    "zero\u200bwidth no\u00a0break thin\u2009space",
    "İstanbul ǅemal ǈ Ǳ",  # lower-casing that changes length, titlecase digraphs
    "Straße STRASSE ẞ",
    "ﬅ ſt long s: it'ſ",  # long s after an apostrophe is "'s" to OpenAI's case-blind regex
    "iota subscript ᾳ and a\u0345b",  # U+0345 case-folds to a letter: OpenAI's regex matches it nowhere
    "&amp;amp;lt; e&#x301; &#8217; &nbsp;",  # entities, unescaped twice
    "don't I'M we'LL you'Re they've she'd",
    "①②③ Ⅻ ½ ²³ ٣٤٥ ๑๒",  # numbers that are not ASCII digits
    "😀👍🏽👨‍👩‍👧 🇫🇷 flags and ZWJ sequences",
    "नमस्ते दुनिया العربية עברית",  # combining marks, right-to-left scripts
    "tab\tnewline\ncarriage\rreturn\r\nCRLF",
    "“curly” ‘single’ „low” «guillemets» ‹single›",
    "a'''b ''' ' s",
    "   \n\t  ",
]


@pytest.fixture(scope="module")
def vocabulary(shared_data: Path) -> Path:
    return shared_data / "assets" / "clip" / "bpe_simple_vocab_16e6.txt.gz"


@pytest.fixture(scope="module")
def clip(vocabulary: Path) -> CLIPTokenizer:
    return CLIPTokenizer(str(vocabulary))


class SimpleTokenizer:
    """OpenAI's clip/simple_tokenizer.py, transcribed: ftfy and html.unescape, whitespace_clean, lower; its regex;
    its BPE."""

    def __init__(self, path: Path) -> None:
        merges = [tuple(merge.split()) for merge in openai_merges(path)]
        self.byte_encoder = openai_bytes_to_unicode()
        vocab = list(self.byte_encoder.values())
        vocab = vocab + [v + "</w>" for v in vocab] + ["".join(merge) for merge in merges] + [SOT, EOT]
        self.encoder = {token: i for i, token in enumerate(vocab)}
        self.bpe_ranks = {merge: i for i, merge in enumerate(merges)}
        self.cache = {SOT: SOT, EOT: EOT}
        self.pat = regex.compile(
            r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|"""
            r"""[^\s\p{L}\p{N}]+""",
            regex.IGNORECASE,
        )

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
        text = html.unescape(html.unescape(ftfy.fix_text(text))).strip()  # basic_clean
        text = regex.sub(r"\s+", " ", text).strip().lower()  # whitespace_clean, then lower
        ids = []
        for token in regex.findall(self.pat, text):
            token = "".join(self.byte_encoder[b] for b in token.encode("utf-8"))
            ids.extend(self.encoder[piece] for piece in self.bpe(token).split(" "))
        return ids


@pytest.fixture(scope="module")
def reference(vocabulary: Path) -> SimpleTokenizer:
    return SimpleTokenizer(vocabulary)


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


def without_special_names(texts: list[str]) -> list[str]:
    """open_clip calls its special tokens <start_of_text> and <end_of_text>: OpenAI's names are plain text to it."""
    return [text for text in texts if "<|" not in text]


def test_byte_characters_are_openais():
    assert byte_characters() == list(openai_bytes_to_unicode().values())


def test_vocabulary_is_clips(clip):
    assert clip.vocab_size == 49408
    assert clip._trained().token_to_id(SOT) == 49406 and clip.eot_id == 49407
    assert clip.encode("a photo of a cat") == [320, 1125, 539, 320, 2368]  # ids every CLIP user has seen


def test_cleans_as_ftfy_and_python_do(clip):
    same = [
        ("ﬁne", "fine"),
        ("ＡＢＣ！", "abc!"),
        ("你好，世界！", "你好,世界!"),
        ("ΣΑΣ", "σας"),
        ("a\x07b", "ab"),
        ("\ufeffhi", "hi"),
        ("<|ENDOFTEXT|>", EOT),
        ("cafÃ©", "café"),
        ("don’t", "don't"),
        ("&amp;amp;", "&"),
    ]
    for text, cleaned in same:
        assert clip.encode(text) == clip.encode(cleaned), text
    assert clip.encode("<|ENDOFTEXT|>") == [clip.eot_id]


def test_matches_openai_simple_tokenizer(clip, reference):
    texts = SAMPLES + TRICKY + stdlib_words()
    assert clip.encode_batch(texts) == [reference.encode(text) for text in texts]


# Any assigned character (of this Python's Unicode version, which the Rust regex engine also covers; surrogates are
# refused, see test_tokenizers.py), with fragments that exercise HTML entities, contractions and whitespace.
UNICODE_TEXT = st.lists(
    st.one_of(
        st.characters(exclude_categories=("Cs", "Cn")),
        st.sampled_from(["&amp;", "&#x301;", "&lt;", "'s", "'LL", " ", "\n", "\t", "e\u0301", "A", "1"]),
    ),
    max_size=40,
).map("".join)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=UNICODE_TEXT)
def test_random_unicode_matches_openai(clip, reference, text):
    assert clip.encode(text) == reference.encode(text)


@pytest.fixture(scope="module")
def open_clip_tokenizer() -> ModuleType:
    """open_clip's tokenizer module, loaded by path: ``import open_clip`` needs torchvision, which radford does not."""
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("open_clip_torch is not installed (pip install --no-deps open_clip_torch)")
    source = Path(spec.submodule_search_locations[0]) / "tokenizer.py"
    module = importlib.util.module_from_spec(importlib.util.spec_from_file_location("open_clip_tokenizer", source))
    parallelism = os.environ.get("TOKENIZERS_PARALLELISM")
    module.__spec__.loader.exec_module(module)
    # Importing it turns tokenizers' parallelism off for the whole process; the other tests keep theirs.
    if parallelism is None:
        os.environ.pop("TOKENIZERS_PARALLELISM", None)
    else:
        os.environ["TOKENIZERS_PARALLELISM"] = parallelism
    return module


def test_matches_open_clip(clip, vocabulary, open_clip_tokenizer):
    theirs = open_clip_tokenizer.SimpleTokenizer(str(vocabulary))
    texts = without_special_names(SAMPLES + TRICKY + stdlib_words()[:500])
    assert clip.encode_batch(texts) == [theirs.encode(text) for text in texts]
    assert torch.equal(clip.tokenize(texts), theirs(texts))  # the model's input: padded, truncated, with its ends


def test_matches_transformers(clip, reference, vocabulary, tmp_path):
    transformers = pytest.importorskip("transformers")
    (tmp_path / "vocab.json").write_text(json.dumps(reference.encoder))
    (tmp_path / "merges.txt").write_text("#version: 0.2\n" + "\n".join(openai_merges(vocabulary)) + "\n")
    hf = transformers.CLIPTokenizer.from_pretrained(tmp_path)
    # transformers does not run ftfy or unescape HTML; the other samples must agree exactly.
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
    with pytest.raises(RadfordError, match=r"lone surrogate '\\ud800'"):
        clip.tokenize(["fine", "not \ud800 fine"])


def test_decode(clip):
    assert clip.decode(clip.encode("A photo of a CAT!")).strip() == "a photo of a cat !"


def test_learned_vocabulary_from_captions():
    captions = [
        f"a {size} {colour} {shape} on the {side}"
        for size in ("small", "large")
        for colour in ("red", "green", "blue")
        for shape in ("circle", "square")
        for side in ("left", "right")
    ]
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
    texts = SAMPLES + TRICKY
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
