"""The sentiment neuron's release format (``radford.models.mlstm_adapter``) against a numpy transcription of OpenAI's
``encoder.py`` (openai/generating-reviews-discovering-sentiment): random small parameters written as its fifteen
``.npy`` files, features equal to its ``transform``, logits and greedy samples equal to its model's."""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np
import pytest
import torch

import radford
from radford.cli import main
from radford.errors import RadfordError
from radford.models.mlstm import MLSTM
from radford.tokenizers.bytes import ByteTokenizer

VOCAB, EMBEDDING, HIDDEN = 256, 8, 16
TEXTS = [
    "demo!",
    "A gob of drivel &amp; so sickly sweet,\neven the eager consumers will retch.",
    "",
    "Crème brûlée",
    "  One long string of cliches.  ",
    "x" * 30,
    "It's a charming and often affecting journey.",
]


def write_release(folder: Path, seed: int = 0) -> list[np.ndarray]:
    """Random parameters in the release's layout: 0.npy ... 14.npy, wh as four column blocks."""
    rng = np.random.default_rng(seed)
    normal = lambda *shape, scale=1.0: (rng.standard_normal(shape) * scale).astype(np.float32)  # noqa: E731
    gain = lambda n: rng.uniform(0.5, 1.5, n).astype(np.float32)  # noqa: E731
    params = [
        normal(VOCAB, EMBEDDING),
        normal(EMBEDDING, 4 * HIDDEN),
        *[normal(HIDDEN, HIDDEN) for _ in range(4)],
        normal(EMBEDDING, HIDDEN),
        normal(HIDDEN, HIDDEN),
        normal(4 * HIDDEN, scale=0.5),
        gain(4 * HIDDEN),
        gain(4 * HIDDEN),
        gain(HIDDEN),
        gain(HIDDEN),
        normal(HIDDEN, VOCAB, scale=0.3),
        normal(VOCAB, scale=0.1),
    ]
    folder.mkdir(parents=True, exist_ok=True)
    for i, array in enumerate(params):
        np.save(folder / f"{i}.npy", array)
    return params


# -- encoder.py and utils.py, transcribed to numpy ----------------------------------------------------------------


def preprocess(text, front_pad="\n ", end_pad=" "):
    text = html.unescape(text)
    text = text.replace("\n", " ").strip()
    text = front_pad + text + end_pad
    return text.encode()


def l2_normalize(w):  # tf.nn.l2_normalize(w, dim=0)
    return w / np.sqrt(np.maximum(np.sum(w * w, axis=0, keepdims=True), 1e-12))


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def batch_pad(xs, nbatch, nsteps):
    xmb = np.zeros((nbatch, nsteps), dtype=np.int32)
    mmb = np.ones((nbatch, nsteps, 1), dtype=np.float32)
    for i, x in enumerate(xs):
        n = len(x)
        xmb[i, -n:] = list(x)
        mmb[i, : nsteps - n] = 0
    return xmb, mmb


class Encoder:
    """encoder.py's ``Model``: the graph of ``model`` (embd, mlstm with weight norm, the output fc without) and
    ``transform``, in float64."""

    def __init__(self, folder: Path, nbatch: int, nsteps: int):
        params = [np.load(folder / f"{i}.npy").astype(np.float64) for i in range(15)]
        params[2] = np.concatenate(params[2:6], axis=1)
        params[3:6] = []
        self.embd, wx, wh, wmx, wmh, self.b, gx, gh, gmx, gmh, self.out_w, self.out_b = params
        self.wx, self.wh = l2_normalize(wx) * gx, l2_normalize(wh) * gh
        self.wmx, self.wmh = l2_normalize(wmx) * gmx, l2_normalize(wmh) * gmh
        self.nhidden, self.nbatch, self.nsteps = wmh.shape[0], nbatch, nsteps

    def model(self, X, S, M):
        c, h = S
        words = self.embd[X]
        hs = []
        for idx in range(X.shape[1]):
            x = words[:, idx]
            m = (x @ self.wmx) * (h @ self.wmh)
            z = x @ self.wx + m @ self.wh + self.b
            i, f, o, u = np.split(z, 4, 1)
            i, f, o, u = sigmoid(i), sigmoid(f), sigmoid(o), np.tanh(u)
            ct = f * c + i * u
            ht = o * np.tanh(ct)
            mask = M[:, idx, :]
            c = ct * mask + c * (1 - mask)
            h = ht * mask + h * (1 - mask)
            hs.append(h)
        logits = np.concatenate(hs, 1).reshape(-1, self.nhidden) @ self.out_w + self.out_b
        return np.stack([c, h], 0), logits

    def transform(self, xs):
        xs = [preprocess(x) for x in xs]
        lens = np.asarray([len(x) for x in xs])
        sorted_idxs = np.argsort(lens)
        unsort_idxs = np.argsort(sorted_idxs)
        sorted_xs = [xs[i] for i in sorted_idxs]
        maxlen = np.max(lens)
        offset = 0
        n = len(xs)
        smb = np.zeros((2, n, self.nhidden))
        for step in range(0, int(np.ceil(maxlen / self.nsteps) * self.nsteps), self.nsteps):
            xsubseq = [x[step : step + self.nsteps] for x in sorted_xs]
            ndone = sum([x == b"" for x in xsubseq])
            offset += ndone
            xsubseq = xsubseq[ndone:]
            sorted_xs = sorted_xs[ndone:]
            nsubseq = len(xsubseq)
            xmb, mmb = batch_pad(xsubseq, nsubseq, self.nsteps)
            for batch in range(0, nsubseq, self.nbatch):
                rows = slice(offset + batch, offset + batch + self.nbatch)
                smb[:, rows, :] = self.model(
                    xmb[batch : batch + self.nbatch], smb[:, rows, :], mmb[batch : batch + self.nbatch]
                )[0]
        return smb[0, unsort_idxs, :]


# -- the tests ----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("sentiment-neuron") / "model"
    write_release(folder)
    return folder


def test_loads_as_an_mlstm_sized_by_the_arrays(release):
    model = radford.load(release)
    assert isinstance(model, MLSTM) and not model.training
    assert (model.hparams.vocab_size, model.hparams.embedding_size, model.hparams.hidden_size) == (256, 8, 16)
    assert model.hparams.weight_norm and isinstance(model.tokenizer, ByteTokenizer)


@pytest.mark.parametrize(("nbatch", "nsteps"), [(128, 64), (2, 8)], ids=["reference-defaults", "small-chunks"])
def test_features_equal_encoder_transform(release, nbatch, nsteps):
    """Final cell states from a zero state, after the reference's preprocessing; encoder.py reads long texts in
    chunks of nsteps bytes and batches of nbatch, carrying the state: the same numbers whatever the chunking."""
    expected = Encoder(release, nbatch, nsteps).transform(TEXTS)
    features = radford.load(release).features(TEXTS, batch_size=3)
    assert features.shape == (len(TEXTS), HIDDEN)
    np.testing.assert_allclose(features.numpy(), expected, atol=1e-4, rtol=0)
    assert np.abs(expected).max() > 0.5  # the parameters drive the state well away from zero


def test_logits_equal_encoder_model(release):
    reference = Encoder(release, 128, 64)
    x = np.array([list(preprocess(TEXTS[1])[:24]), list(preprocess(TEXTS[6])[:24])])
    state = np.zeros((2, 2, HIDDEN))
    expected_states, expected_logits = reference.model(x, state, np.ones((*x.shape, 1)))
    logits, (c, h) = radford.load(release)(torch.tensor(x))
    np.testing.assert_allclose(logits.detach().reshape(-1, VOCAB).numpy(), expected_logits, atol=1e-4, rtol=0)
    np.testing.assert_allclose(torch.stack([c, h]).detach().numpy(), expected_states, atol=1e-4, rtol=0)


def test_greedy_samples_follow_encoder_model(release):
    reference, model = Encoder(release, 1, 1), radford.load(release)
    prompt = list(preprocess("This movie"))
    sampled = [int(b[0]) for b in model.generate(torch.tensor([prompt]), 12, temperature=0)]
    ids = list(prompt)
    for _ in range(12):  # the whole context again each step: the last step's logits pick the next byte
        x = np.array([ids])
        ids.append(int(np.argmax(reference.model(x, np.zeros((2, 1, HIDDEN)), np.ones((*x.shape, 1)))[1][-1])))
    assert sampled == ids[len(prompt) :]
    held = [int(b[0]) for b in model.generate(torch.tensor([prompt]), 12, temperature=0, fix_units={3: 5.0})]
    assert held != sampled  # holding a unit steers what is written


def test_a_wrong_shape_names_the_file(tmp_path):
    params = write_release(tmp_path)
    np.save(tmp_path / "9.npy", params[9][:-1])  # gx one short
    with pytest.raises(RadfordError, match=r"9\.npy \(rnn\.gx\) is \(63,\), not \(64,\)"):
        radford.load(tmp_path)


def test_a_missing_file_is_not_this_format(tmp_path):
    write_release(tmp_path)
    (tmp_path / "14.npy").unlink()
    with pytest.raises(RadfordError, match="not a model folder radford reads.*sentiment-neuron release"):
        radford.load(tmp_path)


def test_the_readme_commands_run_on_a_release(release, capsys):
    """radford generate with a held unit, on the folder as OpenAI ships it: the byte tokenizer comes with it."""
    main(
        [
            "generate",
            "--checkpoint",
            str(release),
            "--prompt",
            "This movie",
            "--max_new_tokens",
            "8",
            "--fix_unit",
            "3=1.0",
            "--seed",
            "0",
        ]
    )
    assert capsys.readouterr().out.startswith("This movie")
