"""The mLSTM: its cell against the equations computed step by step, its hand-written backward against autograd,
truncated backpropagation's carried state, masking, unit fixing, and learning on real review text (slow)."""

from __future__ import annotations

import csv
from pathlib import Path

import lightning as L
import pytest
import torch
import torch.nn.functional as F

from radford.checkpoints import Weights, load, write_checkpoint
from radford.models.mlstm import MLSTM, MLSTMCell, Recurrence, recur
from radford.tokenizers import from_json
from radford.tokenizers.bytes import ByteTokenizer, preprocess
from tests.helpers import error_line, radford_cli


def reference_step(cell: MLSTMCell, x: torch.Tensor, c: torch.Tensor, h: torch.Tensor):
    """One step of the paper's equations, written out as OpenAI's encoder.py computes them."""

    def weight(name: str) -> torch.Tensor:
        w = getattr(cell, name)
        if not cell.weight_norm:
            return w
        return w / w.norm(dim=0, keepdim=True) * getattr(cell, "g" + name[1:])  # tf.nn.l2_normalize(w, 0) * g

    m = (x @ weight("wmx")) * (h @ weight("wmh"))
    z = x @ weight("wx") + m @ weight("wh") + cell.b
    i, f, o, u = z.chunk(4, dim=1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(u)
    return c, torch.sigmoid(o) * torch.tanh(c)


def random_cell(weight_norm: bool) -> MLSTMCell:
    torch.manual_seed(0)
    cell = MLSTMCell(5, 6, weight_norm).double()
    with torch.no_grad():
        for p in cell.parameters():
            p.normal_()  # gains and bias too, so that every term of the equations is exercised
    return cell


@pytest.mark.parametrize("weight_norm", [True, False])
def test_cell_is_the_papers_equations_step_by_step(weight_norm):
    cell = random_cell(weight_norm)
    x = torch.randn(3, 7, 5, dtype=torch.double, requires_grad=True)
    c0, h0 = torch.randn(3, 6, dtype=torch.double), torch.randn(3, 6, dtype=torch.double)
    hs, (c, h) = cell(x, (c0, h0))
    c_ref, h_ref, hs_ref = c0, h0, []
    for t in range(7):
        c_ref, h_ref = reference_step(cell, x[:, t], c_ref, h_ref)
        hs_ref.append(h_ref)
    hs_ref = torch.stack(hs_ref, 1)
    torch.testing.assert_close(hs, hs_ref)
    torch.testing.assert_close((c, h), (c_ref, h_ref))
    # The hand-written backward gives autograd's gradients of the reference, for every parameter and the input.
    weights = torch.randn_like(hs)
    inputs = [x, *cell.parameters()]
    ours = torch.autograd.grad((hs * weights).sum() + c.sum(), inputs)
    reference = torch.autograd.grad((hs_ref * weights).sum() + c_ref.sum(), inputs)
    for a, b in zip(ours, reference, strict=True):
        torch.testing.assert_close(a, b)


def test_backward_with_padding_and_fixed_units_matches_autograd():
    torch.manual_seed(1)
    B, T, H = 3, 6, 4
    tensors = [
        torch.randn(B, T, 4 * H),
        torch.randn(B, T, H),
        torch.randn(H, 4 * H),
        torch.randn(H, H),
        torch.randn(B, H),
        torch.randn(B, H),
    ]
    tensors = [t.double().requires_grad_() for t in tensors]
    mask = torch.rand(B, T) > 0.4
    fixed = {1: 0.5, 3: -2.0}
    hs, cs = Recurrence.apply(*tensors, mask, fixed)
    hs_ref, cs_ref = recur(*tensors, mask, fixed)  # autograd through the same loop
    torch.testing.assert_close((hs, cs), (hs_ref, cs_ref))
    assert torch.all(cs[..., 1][mask] == 0.5) and torch.all(cs[..., 3][mask] == -2.0)  # held wherever a step ran
    upstream = torch.randn_like(hs), torch.randn_like(cs)
    ours = torch.autograd.grad((hs * upstream[0]).sum() + (cs * upstream[1]).sum(), tensors)
    reference = torch.autograd.grad((hs_ref * upstream[0]).sum() + (cs_ref * upstream[1]).sum(), tensors)
    for a, b in zip(ours, reference, strict=True):
        torch.testing.assert_close(a, b)


def test_carried_state_continues_the_window():
    """Truncated backpropagation reads one window after another: the outputs are those of the whole stream."""
    torch.manual_seed(0)
    model = MLSTM(hidden_size=16).eval()
    x = torch.randint(0, 256, (2, 20))
    whole, _ = model(x)
    first, state = model(x[:, :12])
    second, _ = model(x[:, 12:], state)
    torch.testing.assert_close(torch.cat([first, second], 1), whole)


def test_features_do_not_depend_on_the_batch():
    torch.manual_seed(0)
    model = MLSTM(hidden_size=16)
    texts = ["A gem.", "Overlong &amp; dull,\nthough the cast tries hard.", ""]
    together = model.features(texts)
    for k, text in enumerate(texts):
        torch.testing.assert_close(model.features([text])[0], together[k])
    # Each is the final cell state after the reference's preprocessed bytes, from zeros.
    ids = torch.tensor([list(preprocess(texts[1]))])
    _, (c, _) = model.rnn(model.embd(ids))
    torch.testing.assert_close(together[1], c[0])
    assert model.training  # features leave the mode as they found it


def save_checkpoint(model: L.LightningModule, path: Path, tokenizer_json: str | None) -> Path:
    """A .ckpt as radford fit writes it (Lightning's weights and arguments, and radford's record)."""
    tokenizer = None if tokenizer_json is None else from_json(tokenizer_json)
    write_checkpoint(Weights(type(model), dict(model.hparams), model.state_dict(), tokenizer), path)
    return path


@pytest.fixture(scope="module")
def mlstm_checkpoint(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    model = MLSTM(hidden_size=24)
    with torch.no_grad():  # sharper next-byte distributions than the initialisation's, so that units matter
        model.out.weight.mul_(30)
    return save_checkpoint(model, tmp_path_factory.mktemp("mlstm") / "model.ckpt", ByteTokenizer().to_json())


def test_generate_holds_a_fixed_unit(mlstm_checkpoint):
    model = load(mlstm_checkpoint)
    assert isinstance(model, MLSTM) and model.tokenizer.encode("é") == list("é".encode())
    prompt = torch.tensor([model.tokenizer.encode("It was")])

    def sample(**kwargs) -> list[int]:
        steps = model.generate(prompt, 30, generator=torch.Generator().manual_seed(0), **kwargs)
        return [int(step[0]) for step in steps]

    assert sample() == sample()
    assert sample(fix_units={3: 5.0}) != sample()  # a unit held far from its values changes what follows
    # Held from the prompt on: the cell state the next byte is read from has the value at every step.
    _, (c, _) = model(prompt, fixed={3: 5.0})
    assert c[0, 3] == 5.0


def test_generate_cli_with_fix_unit(mlstm_checkpoint):
    args = [
        "generate",
        "--checkpoint",
        str(mlstm_checkpoint),
        "--prompt",
        "Great",
        "--max_new_tokens",
        "20",
        "--seed",
        "3",
    ]
    plain, fixed = radford_cli(*args), radford_cli(*args, "--fix_unit", "7=-3", "--fix_unit", "2=0.5")
    assert plain.returncode == 0 and fixed.returncode == 0, plain.stderr[-2000:] + fixed.stderr[-2000:]
    assert plain.stdout.startswith("Great") and fixed.stdout.startswith("Great") and plain.stdout != fixed.stdout


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--fix_unit", "24=1"], ["unit 24", "0 to 23"]),
        (["--fix_unit", "one=1"], ["--fix_unit", "INDEX=VALUE", "'one=1'"]),
        (["--fix_unit", "3"], ["INDEX=VALUE", "'3'"]),
        (["--no_cache"], ["--no_cache", "MLSTM"]),
    ],
    ids=["unit-out-of-range", "not-an-index", "no-value", "no-cache"],
)
def test_fix_unit_mistakes_are_one_line(mlstm_checkpoint, capsys, extra, expected):
    line = error_line(capsys, "generate", "--checkpoint", str(mlstm_checkpoint), "--prompt", "x", *extra)
    for fragment in expected:
        assert fragment in line, line


@pytest.mark.slow
def test_learns_review_text(shared_data, tmp_path):
    """mlstm-tiny, shrunk to 128 units and 60 steps, on the real Rotten Tomatoes snippets: from 8 bits per byte
    (uniform over 256) to below 4.2 on held-out text; then radford.load and generate read the checkpoint."""
    data = shared_data / "datasets" / "rotten_tomatoes_corpus_full.csv.bz2"
    result = radford_cli(
        "fit",
        "--recipe",
        "mlstm-tiny",
        "--data.init_args.sources",
        f"[{data}]",
        "--model.init_args.hidden_size",
        "128",
        "--trainer.max_steps",
        "60",
        "--trainer.val_check_interval",
        "60",
        "--trainer.limit_val_batches",
        "8",
        cwd=tmp_path,
        env={"OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    run = tmp_path / "runs" / "mlstm-tiny" / "version_0"
    with open(run / "metrics.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    val_bpb = [float(r["val_bpb"]) for r in rows if r.get("val_bpb")]
    assert val_bpb and val_bpb[-1] < 4.2, val_bpb
    model = load(run / "checkpoints" / "last.ckpt")
    assert isinstance(model, MLSTM) and model.hparams.hidden_size == 128
    ids = torch.tensor([model.tokenizer.encode(" This film is")])
    logits, _ = model(ids)
    # Trained on English: after "This film is" a space or a letter, far likelier than under a uniform guess.
    assert F.softmax(logits[0, -1], -1)[ord(" ")] > 1 / 256 * 10
