"""Text data: sources, safe chunking, the token cache, splits, random training windows and their loader."""

import json
import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from radford.data import corpus, datasets, text
from radford.data.text import ConsecutiveWindows, RandomWindows, TextData, WindowLoader
from radford.errors import RadfordError
from radford.tokenizers import BPE, Char, Tokenizer, from_files

STDLIB_ROOT = Path(os.__file__).parent
JSON_SOURCES = sorted((STDLIB_ROOT / "json").glob("*.py"))  # ~50 KB of code and prose, on every machine

# Text where newlines meet spaces, tabs, CRs, quotes, digits, punctuation, other scripts and a special
# token: every place where a cut could change how GPT-2's regex splits the text.
TRICKY = (
    "a\nb\n c \nd\n\ne\r\nf\t\ng\n\tx\n'sx'\n's\n're 12\n34\n.5\n!\n?? \n  \n<|endoftext|>\n<|endoftext|>x\n"
    "def f():\n    return 1\n        x\n\n    y\n"
    "Ελληνικά\nРусский\n日本語\n😀\n👍🏽\ne\u0301\n\u00a0x\n\u2028y\n\u3000z\nend\n\n\n \n \t\nq"
)


# -- fixtures and helpers ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gpt2(shared_data: Path) -> Tokenizer:
    return from_files(shared_data / "assets" / "gpt2")


@pytest.fixture(scope="module")
def shakespeare_path(shared_data: Path) -> Path:
    return shared_data / "datasets" / "tinyshakespeare.txt"


@pytest.fixture(scope="module")
def python_text() -> str:
    """A few stdlib modules concatenated: ~150 KB of code, whose indentation leaves few safe cuts."""
    names = [
        "json/__init__.py",
        "json/decoder.py",
        "json/encoder.py",
        "textwrap.py",
        "string.py",
        "shlex.py",
        "fnmatch.py",
        "difflib.py",
    ]
    return "".join((STDLIB_ROOT / name).read_text(encoding="utf-8") for name in names)


@pytest.fixture(scope="module")
def small_bpe(python_text: str) -> BPE:
    tokenizer = BPE(vocab_size=400)
    tokenizer.train([python_text])
    return tokenizer


def write_files(root: Path, files: dict[str, str]) -> Path:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
    return root


@pytest.fixture
def code_corpus(tmp_path: Path) -> Path:
    """A folder of the json package's modules (without its __pycache__): ~50 KB, nested one level."""
    return write_files(
        tmp_path / "corpus",
        {
            ("pkg/" if i % 2 else "") + path.name: path.read_text(encoding="utf-8")
            for i, path in enumerate(JSON_SOURCES)
        },
    )


def char_data(sources, cache: Path, **settings) -> TextData:
    settings = {"block_size": 16, "batch_size": 4, **settings}
    return TextData(
        [str(s) for s in sources] if isinstance(sources, list) else str(sources),
        tokenizer=Char(),
        cache_dir=str(cache),
        **settings,
    )


def forbid(monkeypatch: pytest.MonkeyPatch, cls: type, *methods: str) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError(f"{cls.__name__}.{methods} must not run: the cache should have been used")

    for method in methods:
        monkeypatch.setattr(cls, method, refuse)


def expected_stream(tokenizer: Tokenizer, files: list[Path]) -> np.ndarray:
    ids: list[int] = []
    for file in files:
        ids += tokenizer.encode(file.read_text(encoding="utf-8"))
        if tokenizer.eot_id is not None:
            ids.append(tokenizer.eot_id)
    return np.array(ids)


def batches(loader) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return list(loader)


def assert_same_batches(got: list, want: list) -> None:
    assert len(got) == len(want)
    for (gx, gy), (wx, wy) in zip(got, want, strict=True):
        assert torch.equal(gx, wx) and torch.equal(gy, wy)


# -- corpus.resolve -----------------------------------------------------------------------------------


def test_resolve_file_folder_and_glob(tmp_path: Path) -> None:
    root = write_files(
        tmp_path / "docs",
        {"a.txt": "a", "b.md": "b", "sub/c.txt": "c", "sub/deep/d.txt": "d", ".hidden.txt": "h", "sub/.secret": "s"},
    )
    assert corpus.resolve(str(root / "a.txt")) == [(root / "a.txt").resolve()]
    # A folder: every file below it, recursively, sorted, hidden files skipped.
    folder = corpus.resolve(str(root))
    assert folder == sorted(folder)
    assert [p.relative_to(root.resolve()).as_posix() for p in folder] == [
        "a.txt",
        "b.md",
        "sub/c.txt",
        "sub/deep/d.txt",
    ]
    assert [p.name for p in corpus.resolve(str(root / "*.txt"))] == ["a.txt"]
    assert [p.name for p in corpus.resolve(str(root / "**" / "*.txt"))] == ["a.txt", "c.txt", "d.txt"]
    assert all(p.is_absolute() for p in folder)


def test_resolve_lists_duplicates_once_in_first_seen_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = write_files(tmp_path, {"x/a.txt": "a", "x/b.txt": "b", "y.txt": "y"})
    monkeypatch.chdir(tmp_path)
    files = corpus.resolve(["y.txt", str(root / "x" / "b.txt"), "x", str(root / "*" / "*.txt"), "./y.txt"])
    assert [p.relative_to(root.resolve()).as_posix() for p in files] == ["y.txt", "x/b.txt", "x/a.txt"]


def test_resolve_stdlib() -> None:
    files = corpus.resolve("stdlib")
    assert files == corpus.resolve(["stdlib"]) and len(files) == len(set(files))
    assert all(file.suffix == ".py" for file in files)
    assert not [f for f in files if {"test", "tests"} & set(f.relative_to(STDLIB_ROOT.resolve()).parts)]
    assert (STDLIB_ROOT / "os.py").resolve() in files
    assert sum(file.stat().st_size for file in files) > 5_000_000


def test_resolve_errors_name_the_source(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-corpus.txt"
    with pytest.raises(RadfordError, match="no-such-corpus.txt.*not found"):
        corpus.resolve([str(missing)])
    with pytest.raises(RadfordError, match=r"nothing-here-\*\.txt.*matches no files"):
        corpus.resolve(str(tmp_path / "nothing-here-*.txt"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(RadfordError, match="empty.*matches no files"):
        corpus.resolve(str(tmp_path / "empty"))
    with pytest.raises(RadfordError, match="no text sources"):
        corpus.resolve([])


def test_resolve_folder_skips_hidden_folders(tmp_path: Path) -> None:
    root = write_files(tmp_path / "repo", {"README.md": "r", ".git/config": "[core]", ".git/refs/heads/main": "0"})
    assert [p.name for p in corpus.resolve(str(root))] == ["README.md"]


# -- corpus.read and fingerprint ----------------------------------------------------------------------


def test_read_non_utf8_names_file_and_offset(tmp_path: Path) -> None:
    good, bad = tmp_path / "good.txt", tmp_path / "latin1.txt"
    good.write_text("naïve ✓", encoding="utf-8")
    bad.write_bytes("café au lait".encode("latin-1"))  # é is the single byte 0xe9 at offset 3
    assert corpus.read(good) == "naïve ✓"
    with pytest.raises(RadfordError, match=r"latin1\.txt.*offset 3\b"):
        corpus.read(bad)
    with pytest.raises(RadfordError, match=r"latin1\.txt.*offset 3\b"):
        list(corpus.documents([good, bad]))


def test_fingerprint_follows_size_and_mtime(tmp_path: Path) -> None:
    files = [write_files(tmp_path, {"a.txt": "hello"}) / "a.txt"]
    first = corpus.fingerprint(files)
    assert corpus.fingerprint(files) == first
    stat = files[0].stat()
    os.utime(files[0], ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    touched = corpus.fingerprint(files)
    assert touched != first
    files[0].write_text("hello!")
    os.utime(files[0], ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))  # same mtime, new size
    assert corpus.fingerprint(files) not in (first, touched)


# -- corpus.chunks ---------------------------------------------------------------------------------


def check_chunks(tokenizer: Tokenizer, text_: str, size: int, min_pieces: int) -> list[str]:
    pieces = corpus.chunks(text_, size)
    assert "".join(pieces) == text_
    assert len(pieces) >= min_pieces
    assert all(len(piece) > size for piece in pieces[:-1])  # a cut is at or after `size` characters
    joined = [i for ids in tokenizer.encode_batch(pieces) for i in ids]
    assert joined == tokenizer.encode(text_)
    return pieces


def test_chunks_small_text_is_one_piece() -> None:
    assert corpus.chunks("short\ntext", 100) == ["short\ntext"]
    assert corpus.chunks("", 100) == [""]
    assert corpus.chunks("no newline at all " * 100, 10) == ["no newline at all " * 100]
    assert corpus.chunks("ab\ncd\nef", 1) == ["ab\n", "cd\n", "ef"]
    assert corpus.chunks("ab \ncd\n ef\n\ngh", 1) == ["ab \ncd\n ef\n\ngh"]  # no cut next to whitespace


def test_chunks_encode_like_the_whole_shakespeare(gpt2: Tokenizer, shakespeare_path: Path, small_bpe: BPE) -> None:
    play = shakespeare_path.read_text(encoding="utf-8")[:300_000]
    for tokenizer in (gpt2, small_bpe):
        pieces = check_chunks(tokenizer, play, 2000, min_pieces=100)
        assert max(len(piece) for piece in pieces) < 3000  # verse has a safe cut every line or two


@pytest.mark.parametrize("kind", ["gpt2", "bpe"])
def test_chunks_encode_like_the_whole_python(kind: str, python_text: str, request: pytest.FixtureRequest) -> None:
    tokenizer = request.getfixturevalue("gpt2" if kind == "gpt2" else "small_bpe")
    check_chunks(tokenizer, python_text, 2000, min_pieces=10)


@pytest.mark.parametrize("kind", ["gpt2", "bpe"])
def test_chunks_tricky_boundaries(kind: str, request: pytest.FixtureRequest) -> None:
    tokenizer = request.getfixturevalue("gpt2" if kind == "gpt2" else "small_bpe")
    check_chunks(tokenizer, TRICKY * 3, 1, min_pieces=30)  # cut at every safe place


# -- TextData: the token cache -------------------------------------------------------------------------


def cache_entries(cache: Path) -> list[Path]:
    return sorted(cache.glob("*.bin"))


def test_cache_written_then_reused(code_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    first = char_data(code_corpus, cache)
    first.prepare_data()
    [entry] = cache_entries(cache)
    meta = json.loads(entry.with_suffix(".json").read_text())
    assert meta["dtype"] == "uint16" and first.tokens.dtype == np.uint16
    assert meta["num_tokens"] == len(first.tokens) == entry.stat().st_size // 2
    assert meta["vocab_size"] == first.tokenizer.vocab_size
    assert meta["sources"] == [str(f) for f in corpus.resolve(str(code_corpus))]
    assert len(list(cache.glob("*.tokenizer.json"))) == 1
    assert not Path.home().joinpath(".cache", "radford", "text", entry.name).exists()
    mtime = entry.stat().st_mtime_ns

    # A second run with the same sources and tokenizer neither trains nor encodes.
    forbid(monkeypatch, Char, "train", "encode_batch")
    second = char_data(code_corpus, cache)
    second.prepare_data()
    assert np.array_equal(second.tokens, first.tokens)
    assert second.tokenizer.to_json() == first.tokenizer.to_json()
    assert cache_entries(cache) == [entry] and entry.stat().st_mtime_ns == mtime
    monkeypatch.undo()

    # Touching a source makes a new entry; editing it makes one holding the new text.
    source = corpus.resolve(str(code_corpus))[0]
    stat = source.stat()
    os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    touched = char_data(code_corpus, cache)
    touched.prepare_data()
    assert len(cache_entries(cache)) == 2
    assert np.array_equal(touched.tokens, first.tokens)
    with source.open("a", encoding="utf-8") as out:
        out.write("\n# appended\n")
    edited = char_data(code_corpus, cache)
    edited.prepare_data()
    assert len(cache_entries(cache)) == 3 and len(edited.tokens) == len(first.tokens) + len("\n# appended\n")


def test_the_token_cache_and_the_datasets_share_one_cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """$RADFORD_CACHE is read in one place (``datasets.cache_dir``): the token cache is its sibling, so moving one
    moves both."""
    monkeypatch.setenv("RADFORD_CACHE", str(tmp_path / "env"))
    assert TextData("stdlib", tokenizer=Char()).cache_dir == tmp_path / "env" / "text"
    assert datasets.cache_dir() == tmp_path / "env" / "datasets"
    monkeypatch.setattr(datasets, "cache_dir", lambda: tmp_path / "elsewhere" / "datasets")
    assert text.cache_root() == tmp_path / "elsewhere"
    monkeypatch.undo()  # the real cache_dir, and the session's RADFORD_CACHE
    monkeypatch.delenv("RADFORD_CACHE")
    assert text.cache_root() == Path.home() / ".cache" / "radford"


@pytest.mark.parametrize("kind", ["char", "bpe"])
def test_token_stream_is_documents_in_order(
    kind: str, code_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(text, "ENCODE_BATCH", 2)  # flush often: order must survive many batches
    tokenizer = Char() if kind == "char" else BPE(vocab_size=300)
    data = TextData(str(code_corpus), tokenizer=tokenizer, block_size=16, batch_size=4, cache_dir=str(tmp_path / "c"))
    data.prepare_data()
    files = corpus.resolve(str(code_corpus))
    assert len(files) == len(JSON_SOURCES) >= 4
    assert not data.tokenizer.needs_training
    stream = expected_stream(data.tokenizer, files)
    assert np.array_equal(data.tokens, stream)
    if kind == "char":  # no separator: one token per character
        assert data.tokenizer.eot_id is None
        assert len(data.tokens) == sum(len(f.read_text(encoding="utf-8")) for f in files)
    else:  # each document is followed by <|endoftext|>
        assert data.tokenizer.vocab_size <= 300 and data.tokens.dtype == np.uint16
        assert int((data.tokens == data.tokenizer.eot_id).sum()) == len(files)
        assert data.tokens[-1] == data.tokenizer.eot_id


def test_token_stream_gpt2_long_documents(
    gpt2: Tokenizer, shakespeare_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(text, "ENCODE_BATCH", 2)
    play = shakespeare_path.read_text(encoding="utf-8")[:200_000]
    assert len(corpus.chunks(play)) >= 3  # encoded in pieces, flushed part-way through the document
    root = write_files(tmp_path / "docs", {"a.txt": play, "b.txt": "says <|endoftext|> itself\n", "c/d.txt": "x"})
    data = TextData(str(root), tokenizer=gpt2, block_size=32, cache_dir=str(tmp_path / "cache"))
    data.prepare_data()
    files = corpus.resolve(str(root))
    assert [f.name for f in files] == ["a.txt", "b.txt", "d.txt"]
    assert data.tokens.dtype == np.uint16
    assert np.array_equal(data.tokens, expected_stream(gpt2, files))
    assert int((data.tokens == 50256).sum()) == 4  # three separators and the one written in b.txt


def test_large_vocabulary_uses_uint32(tmp_path: Path) -> None:
    alphabet = "".join(chr(0x10000 + i) for i in range(70_000))  # more characters than uint16 can number
    root = write_files(tmp_path / "docs", {"wide.txt": alphabet})
    data = char_data(root, tmp_path / "cache", block_size=8)
    assert data.vocab_size == 70_000
    data.prepare_data()
    [entry] = cache_entries(tmp_path / "cache")
    assert json.loads(entry.with_suffix(".json").read_text())["dtype"] == "uint32"
    assert data.tokens.dtype == np.uint32 and np.array_equal(data.tokens, np.arange(70_000))


# -- TextData: the tokenizer --------------------------------------------------------------------------


def test_vocab_size_trains_and_caches_tokenizer(
    shakespeare_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    data = char_data(shakespeare_path, cache)
    assert data.tokenizer.needs_training
    assert data.vocab_size == 65
    assert not data.tokenizer.needs_training and data.tokenizer.encode("\n") == [0]
    assert len(list(cache.glob("*.tokenizer.json"))) == 1 and not cache_entries(cache)  # nothing encoded yet

    forbid(monkeypatch, Char, "train")
    again = char_data(shakespeare_path, cache)
    assert again.vocab_size == 65
    assert again.tokenizer.to_json() == data.tokenizer.to_json()


def test_vocab_size_of_trained_bpe(code_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = TextData(str(code_corpus), tokenizer=BPE(vocab_size=300), cache_dir=str(tmp_path))
    assert data.vocab_size == 300 and data.tokenizer.eot_id is not None
    forbid(monkeypatch, BPE, "train")
    assert TextData(str(code_corpus), tokenizer=BPE(vocab_size=300), cache_dir=str(tmp_path)).vocab_size == 300


def test_state_dict_round_trips_tokenizer(
    code_corpus: Path, tmp_path: Path, small_bpe: BPE, monkeypatch: pytest.MonkeyPatch
) -> None:
    sample = JSON_SOURCES[0].read_text(encoding="utf-8")[:5000]
    data = char_data(code_corpus, tmp_path / "cache")
    data.prepare_data()
    state = data.state_dict()
    json.dumps(state)  # a checkpoint can hold it

    restored = char_data(code_corpus, tmp_path / "cache")
    restored.load_state_dict(state)
    assert isinstance(restored.tokenizer, Char) and not restored.tokenizer.needs_training
    assert restored.tokenizer.encode(sample) == data.tokenizer.encode(sample)
    assert restored.tokenizer.fingerprint() == data.tokenizer.fingerprint()
    restored.load_state_dict({})  # an old checkpoint without one leaves the tokenizer alone
    assert restored.tokenizer.encode(sample) == data.tokenizer.encode(sample)
    # A resumed run finds the tokens its first run cached.
    forbid(monkeypatch, Char, "train", "encode_batch")
    restored.prepare_data()
    assert np.array_equal(restored.tokens, data.tokens)
    monkeypatch.undo()

    bpe_data = TextData(str(code_corpus), tokenizer=small_bpe, cache_dir=str(tmp_path / "cache"))
    other = TextData(str(code_corpus), cache_dir=str(tmp_path / "cache"))
    other.load_state_dict(bpe_data.state_dict())
    assert other.tokenizer.encode_batch([sample, TRICKY]) == small_bpe.encode_batch([sample, TRICKY])
    assert (other.tokenizer.vocab_size, other.tokenizer.eot_id) == (small_bpe.vocab_size, small_bpe.eot_id)


# -- TextData: splits and held-out windows ---------------------------------------------------------


@pytest.mark.parametrize("val_fraction", [0.1, 0.25])
def test_split_and_held_out_windows(val_fraction: float, code_corpus: Path, tmp_path: Path) -> None:
    data = char_data(code_corpus, tmp_path / "cache", block_size=16, batch_size=8, val_fraction=val_fraction)
    data.prepare_data()
    tokens = np.asarray(data.tokens)
    train = data.train_dataloader().dataset.tokens
    val_loader = data.val_dataloader()
    val = val_loader.dataset.tokens
    assert np.array_equal(np.concatenate([train, val]), tokens)
    assert len(val) == len(tokens) - int(len(tokens) * (1 - val_fraction))
    assert abs(len(val) - val_fraction * len(tokens)) < 1

    for loader in (val_loader, data.test_dataloader()):
        xs, ys = zip(*loader, strict=True)
        assert all(x.shape[0] <= 8 for x in xs) and xs[0].shape == (8, 16) and xs[0].dtype == torch.int64
        x, y = torch.cat(xs), torch.cat(ys)
        windows = (len(val) - 1) // 16
        assert len(x) == len(loader.dataset) == windows
        assert np.array_equal(x.numpy(), val[: windows * 16].reshape(windows, 16))  # consecutive, disjoint
        assert np.array_equal(y.numpy(), val[1 : windows * 16 + 1].reshape(windows, 16))  # shifted by one


def test_consecutive_windows_reach_the_last_token() -> None:
    tokens = np.arange(33, dtype=np.uint16)  # (33 - 1) / 8: four windows, the last predicting token 32
    windows = ConsecutiveWindows(tokens, 8)
    assert len(windows) == 4
    x, y = windows[3]
    assert x.tolist() == list(range(24, 32)) and y.tolist() == list(range(25, 33))


@pytest.mark.parametrize(
    "settings",
    [
        {"val_fraction": 0.0},
        {"val_fraction": 1.0},
        {"val_fraction": -0.1},
        {"val_fraction": 1.5},
        {"block_size": 0},
        {"batch_size": 0},
    ],
)
def test_bad_settings_raise(settings: dict, tmp_path: Path) -> None:
    name = next(iter(settings))
    with pytest.raises(RadfordError, match=name):
        TextData("stdlib", tokenizer=Char(), cache_dir=str(tmp_path), **settings)


def test_too_small_corpus_raises(tmp_path: Path) -> None:
    root = write_files(tmp_path / "docs", {"tiny.txt": "just a few words of text\n" * 4})  # 100 characters
    data = char_data(root, tmp_path / "cache", block_size=64)
    with pytest.raises(RadfordError, match="100 tokens: too few for windows of 64"):
        data.prepare_data()
    char_data(root, tmp_path / "cache", block_size=4).prepare_data()  # the same text suits shorter windows


def test_too_small_corpus_raises_every_time(tmp_path: Path) -> None:
    root = write_files(tmp_path / "docs", {"tiny.txt": "just a few words of text\n" * 4})
    data = char_data(root, tmp_path / "cache", block_size=64)
    for _ in range(2):
        with pytest.raises(RadfordError, match="too few"):
            data.prepare_data()


def test_too_small_training_split_raises(tmp_path: Path) -> None:
    root = write_files(tmp_path / "docs", {"tiny.txt": "abcdefghijklmnopqrstuvwxy"})  # 25 tokens, 2 for training
    data = char_data(root, tmp_path / "cache", block_size=8, batch_size=2, val_fraction=0.9)
    with pytest.raises(RadfordError, match="too few"):
        data.prepare_data()
        next(iter(data.train_dataloader()))


def test_empty_token_stream_raises_radford_error(tmp_path: Path) -> None:
    root = write_files(tmp_path / "docs", {"empty.txt": ""})
    data = char_data(root, tmp_path / "cache", block_size=4)
    trained = Char()
    trained.train(["abc"])
    data.load_state_dict({"tokenizer": trained.to_json()})
    with pytest.raises(RadfordError, match=r"text sources \[.*docs'\] are empty"):
        data.prepare_data()


# -- training windows ------------------------------------------------------------------------------


def test_random_windows_are_a_function_of_seed_and_index() -> None:
    tokens = np.arange(5000, dtype=np.uint16)
    windows = RandomWindows(tokens, 16, 8, seed=7)
    x, y = windows.batch(3)
    assert x.shape == y.shape == (8, 16) and x.dtype == y.dtype == torch.int64
    assert torch.equal(x, windows.batch(3)[0]) and torch.equal(x, RandomWindows(tokens, 16, 8, seed=7).batch(3)[0])
    assert not torch.equal(x, windows.batch(4)[0])
    assert not torch.equal(x, RandomWindows(tokens, 16, 8, seed=8).batch(3)[0])
    starts = x[:, 0]
    assert torch.equal(x, starts[:, None] + torch.arange(16)) and torch.equal(y, x + 1)
    assert windows.batches_per_epoch == len(windows) == (5000 - 1) // (16 * 8)


def test_random_windows_match_the_memmap(code_corpus: Path, tmp_path: Path) -> None:
    data = char_data(code_corpus, tmp_path / "cache", block_size=16, batch_size=4)
    loader = data.train_dataloader()
    assert isinstance(loader, WindowLoader) and loader.dataset.first_batch == 0
    assert (loader.dataset.rank, loader.dataset.world_size, loader.dataset.seed) == (0, 1, 1337)
    train = np.asarray(loader.dataset.tokens)
    every_window = np.lib.stride_tricks.sliding_window_view(train, 17)
    x, y = next(iter(loader))
    assert x.shape == (4, 16)
    for row_x, row_y in zip(x.numpy(), y.numpy(), strict=True):
        assert np.array_equal(row_x[1:], row_y[:-1])
        assert (every_window == np.concatenate([row_x, row_y[-1:]])).all(axis=1).any()


def test_random_windows_cover_the_last_start() -> None:
    tokens = np.arange(10, dtype=np.uint16)  # windows of 8 + 1 tokens: starts 0 and 1 only
    windows = RandomWindows(tokens, 8, 4, seed=0)
    starts = {int(s) for g in range(20) for s in windows.batch(g)[0][:, 0]}
    assert starts == {0, 1}  # the window ending on the last token is drawn, and none runs past it


def test_ranks_take_their_rows_of_the_global_batch() -> None:
    tokens = np.arange(4000, dtype=np.uint16)
    single = RandomWindows(tokens, 8, 6, seed=5)
    ranks = [RandomWindows(tokens, 8, 3, seed=5, rank=r, world_size=2) for r in range(2)]
    assert ranks[0].batches_per_epoch == ranks[1].batches_per_epoch == single.batches_per_epoch
    for g in (0, 1, 17):
        x, y = single.batch(g)
        for r, windows in enumerate(ranks):
            rx, ry = windows.batch(g)
            assert torch.equal(rx, x[r * 3 : (r + 1) * 3]) and torch.equal(ry, y[r * 3 : (r + 1) * 3])
        assert not torch.equal(ranks[0].batch(g)[0], ranks[1].batch(g)[0])


def test_train_dataloader_follows_trainer_rank_and_progress(code_corpus: Path, tmp_path: Path) -> None:
    data = char_data(code_corpus, tmp_path / "cache", block_size=16, batch_size=4, seed=3)
    progress = SimpleNamespace(total=SimpleNamespace(ready=7))
    data.trainer = SimpleNamespace(
        global_rank=1, world_size=2, fit_loop=SimpleNamespace(epoch_loop=SimpleNamespace(batch_progress=progress))
    )
    loader = data.train_dataloader()
    dataset = loader.dataset
    assert (dataset.rank, dataset.world_size, dataset.first_batch) == (1, 2, 7)
    x, _ = next(iter(loader))  # a resumed run goes on with global batch 7, this rank's rows of it
    whole, _ = RandomWindows(dataset.tokens, 16, 8, seed=3).batch(7)
    assert torch.equal(x, whole[4:])


# -- the loader's epochs ---------------------------------------------------------------------------


def test_loader_moves_on_one_epoch_per_iteration() -> None:
    dataset = RandomWindows(np.arange(41, dtype=np.uint16), 4, 2, seed=1)  # (41 - 1) / 8: 5 batches an epoch
    loader = WindowLoader(dataset)
    assert len(loader) == 5
    assert_same_batches(batches(loader), [dataset.batch(i) for i in range(5)])
    assert_same_batches(batches(loader), [dataset.batch(i) for i in range(5, 10)])

    dataset.first_batch = 3  # resumed mid-epoch: the rest of that epoch, then whole ones
    assert_same_batches(batches(loader), [dataset.batch(i) for i in (3, 4)])
    assert_same_batches(batches(loader), [dataset.batch(i) for i in range(5, 10)])
    dataset.first_batch = 12
    assert_same_batches(batches(loader), [dataset.batch(i) for i in (12, 13, 14)])
    assert dataset.first_batch == 15


def test_loader_position_is_set_when_iteration_starts() -> None:
    dataset = RandomWindows(np.arange(41, dtype=np.uint16), 4, 2, seed=1)
    loader = WindowLoader(dataset)
    iterator = iter(loader)
    assert dataset.first_batch == 5  # moved on at once: prefetching never shifts it
    assert_same_batches(list(iterator), [dataset.batch(i) for i in range(5)])


def test_loader_workers_keep_the_order() -> None:
    datasets = [RandomWindows(np.arange(41, dtype=np.uint16), 4, 2, seed=1) for _ in range(2)]
    serial, workers = WindowLoader(datasets[0]), WindowLoader(datasets[1], num_workers=2)
    # Starts even and odd, mid-epoch and not; 5 batches an epoch is no multiple of 2 workers.
    for first, expected in [(2, [2, 3, 4]), (None, range(5, 10)), (11, range(11, 15)), (None, range(15, 20))]:
        if first is not None:
            datasets[0].first_batch = datasets[1].first_batch = first
        got = batches(workers)
        assert_same_batches(got, [datasets[0].batch(i) for i in expected])
        assert_same_batches(got, batches(serial))
    assert datasets[0].first_batch == datasets[1].first_batch == 20


def test_loader_state_refuses_other_batches() -> None:
    tokens = np.arange(41, dtype=np.uint16)
    saved = WindowLoader(RandomWindows(tokens, 4, 2, seed=1)).state_dict()
    json.dumps(saved)  # a checkpoint can hold it
    WindowLoader(RandomWindows(tokens, 4, 2, seed=1)).load_state_dict(saved)  # the same batches: fine
    WindowLoader(RandomWindows(tokens, 4, 2, seed=1)).load_state_dict({})  # a state without the keys: fine
    for other, change in [
        (RandomWindows(tokens, 4, 2, seed=2), "seed 1 -> 2"),
        (RandomWindows(tokens, 4, 1, seed=1), "batch_size 2 -> 1"),
        (RandomWindows(tokens, 2, 2, seed=1), "block_size 4 -> 2"),
        (RandomWindows(np.arange(81, dtype=np.uint16), 4, 2, seed=1), "batches_per_epoch 5 -> 10"),
        (RandomWindows(tokens, 4, 1, seed=1, rank=1, world_size=2), "world_size 1 -> 2"),
    ]:
        with pytest.raises(RadfordError, match=change):
            WindowLoader(other).load_state_dict(saved)
