"""Datasets by name: read from a mirror (../shared/datasets, laid out as radford's cache), downloaded once from a URL
mirror into the cache and reused, checked by sha256, and accepted wherever a data module takes a file. The network is
never used: public downloads are stood in for by the shared files."""

from __future__ import annotations

import shutil
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from radford.commands.probe import read_labelled
from radford.data import corpus, datasets
from radford.data.bytes import ByteData
from radford.data.images import ImageData, load_labelled
from radford.data.records import read_records
from radford.errors import RadfordError

IN_SHARED = [name for name in datasets.DATASETS if name != "sst2/test"]  # ../shared has no SST test split


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("RADFORD_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv(datasets.MIRROR, raising=False)
    return tmp_path / "cache" / "datasets"


@pytest.fixture
def mirror(shared_data, cache, monkeypatch) -> Path:
    folder = shared_data / "datasets"
    monkeypatch.setenv(datasets.MIRROR, str(folder))
    return folder


@pytest.fixture
def no_network(monkeypatch) -> list[str]:
    """Every URL opened is recorded and refused, as on a machine without network."""
    opened: list[str] = []

    def urlopen(url, timeout=None):
        opened.append(url)
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    return opened


@pytest.mark.parametrize("name", IN_SHARED)
def test_folder_mirror_is_read_in_place_and_checked(mirror, cache, no_network, name):
    path = datasets.resolve(name)
    assert path == mirror / datasets.DATASETS[name].file
    assert not cache.exists() and not no_network


def test_a_file_missing_from_the_mirror_is_one_line(mirror, no_network):
    with pytest.raises(
        RadfordError,
        match=rf"^dataset 'sst2/test': RADFORD_DATASETS_MIRROR={mirror} has no "
        r"sst2/test_binary_sent.csv",
    ):
        datasets.resolve("sst2/test")
    assert not no_network


def test_url_mirror_downloads_once_into_the_cache(shared_data, cache, tmp_path, monkeypatch, capsys):
    source = shared_data / "datasets" / "tinyshakespeare.txt"
    served = tmp_path / "served"
    served.mkdir()
    shutil.copy(source, served / "tinyshakespeare.txt")
    monkeypatch.setenv(datasets.MIRROR, served.as_uri())
    path = datasets.resolve("tinyshakespeare")
    assert path == cache / "tinyshakespeare.txt" and path.read_bytes() == source.read_bytes()
    assert "downloading tinyshakespeare" in capsys.readouterr().err  # the progress bar
    (served / "tinyshakespeare.txt").unlink()  # reused: the mirror is not asked again
    assert datasets.resolve("tinyshakespeare") == path


def test_public_download_is_checked_and_kept(shared_data, cache, monkeypatch):
    """The public URL stood in for by the shared file; a corrupt download is refused and nothing is kept."""
    real_urlopen = urllib.request.urlopen
    dataset = datasets.DATASETS["mnist"]
    served = {dataset.urls[0]: shared_data / "datasets" / dataset.file}
    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout: real_urlopen(served[url].as_uri()))
    assert datasets.resolve("mnist").read_bytes() == served[dataset.urls[0]].read_bytes()
    corrupt = cache.parent / "corrupt.csv"
    corrupt.write_text("label,sentence\n1,not SST\n")
    served = {datasets.DATASETS["sst2/dev"].urls[0]: corrupt}
    with pytest.raises(
        RadfordError,
        match=r"^dataset 'sst2/dev' from https://raw.githubusercontent.com/.* has "
        r"sha256 .*, not the expected f34c4987fea208fe...: the file changed",
    ):
        datasets.resolve("sst2/dev")
    assert not (cache / "sst2").exists() or not any((cache / "sst2").iterdir())


def test_offline_without_mirror_is_one_line(cache, no_network):
    with pytest.raises(
        RadfordError,
        match=r"^cannot download dataset 'sst2/test' \(https://.*test_binary_sent.csv: "
        r"no network\): without network, set RADFORD_DATASETS_MIRROR",
    ):
        datasets.resolve("sst2/test")
    assert no_network == list(datasets.DATASETS["sst2/test"].urls)


def test_paths_win_and_unknown_names_list_the_valid_ones(cache, tmp_path, monkeypatch, no_network):
    monkeypatch.chdir(tmp_path)
    Path("mnist").write_text("a local file named like a dataset")
    assert datasets.resolve("mnist") == Path("mnist")
    with pytest.raises(
        RadfordError,
        match=r"text source 'tinyshakespear' not found: .* a dataset name "
        r"\(tinyshakespeare, rotten-tomatoes, mnist, sst2/train",
    ):
        corpus.resolve(["tinyshakespear"])
    with pytest.raises(RadfordError, match=r"image source 'mnist5k' not found; valid: .* a dataset name \("):
        ImageData(source="mnist5k").setup()
    with pytest.raises(RadfordError, match=r"data file 'sst2' not found: .* a dataset name \("):
        list(read_records("sst2"))
    assert not no_network


def test_data_modules_take_names(mirror):
    assert corpus.resolve(["tinyshakespeare"]) == [(mirror / "tinyshakespeare.txt").resolve()]
    stream = ByteData(sources=["rotten-tomatoes"], block_size=8, batch_size=2).stream()
    assert len(stream) > 1_000_000
    images, labels = load_labelled("mnist", image_size=28, channels=1)
    assert images.shape == (5000, 1, 28, 28) and labels.bincount().tolist() == [500] * 10
    data = ImageData(source="mnist", image_size=32, channels=1, batch_size=64)
    data.setup()
    assert len(data.dataset) == 5000
    records = [record for _, record in read_records("sst2/dev")]
    assert len(records) == 872 and set(records[0]) == {"label", "sentence"}
    texts, labels, classes = read_labelled("sst2/train", "sentence", "label")
    assert len(texts) == 6920 and classes == ["0", "1"]
