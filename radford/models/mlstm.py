"""The byte-level multiplicative LSTM of the sentiment neuron (Radford, Jozefowicz and Sutskever 2017, "Learning
to Generate Reviews and Discovering Sentiment"), the cell of Krause et al. 2016 ("Multiplicative LSTM for
sequence modelling"), written after OpenAI's released encoder (``generating-reviews-discovering-sentiment``,
``encoder.py``), whose parameter names and (inputs, outputs) weight layout it keeps:

    m = (x wmx) * (h wmh)                       the input picks a recurrent transition per byte
    i, f, o, u = split(x wx + m wh + b)
    c = sigmoid(f) * c + sigmoid(i) * tanh(u)
    h = sigmoid(o) * tanh(c)

with weight normalisation (Salimans and Kingma 2016) of every matrix's columns as an option, on in the paper's
setting (section 3). Training follows section 3: 256-byte windows of 128 contiguous streams, truncated
backpropagation (the state carries over from one window to the next, gradients do not), Adam with the learning
rate decayed linearly to zero. The cell state is what the paper probes (section 4) and what ``features`` returns.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics import MeanMetric

from radford.errors import RadfordError
from radford.models.common import adam, check_sampling, inference, length_sorted_batches, logging_step, sampler
from radford.throughput import flop_count, on_meta
from radford.tokenizers.bytes import VOCAB_SIZE, preprocess

State = tuple[Tensor, Tensor]  # (cell, hidden), each (batch, hidden_size)


class MLSTMCell(nn.Module):
    """The recurrence, parameters named and laid out (inputs, outputs) as OpenAI's ``mlstm``."""

    def __init__(self, input_size: int, hidden_size: int, weight_norm: bool = True):
        super().__init__()
        self.hidden_size, self.weight_norm = hidden_size, weight_norm
        self.wx = nn.Parameter(torch.empty(input_size, 4 * hidden_size))
        self.wh = nn.Parameter(torch.empty(hidden_size, 4 * hidden_size))
        self.wmx = nn.Parameter(torch.empty(input_size, hidden_size))
        self.wmh = nn.Parameter(torch.empty(hidden_size, hidden_size))
        self.b = nn.Parameter(torch.zeros(4 * hidden_size))
        if weight_norm:  # a gain per output column
            self.gx, self.gh = nn.Parameter(torch.ones(4 * hidden_size)), nn.Parameter(torch.ones(4 * hidden_size))
            self.gmx, self.gmh = nn.Parameter(torch.ones(hidden_size)), nn.Parameter(torch.ones(hidden_size))
        # OpenAI released no training code. Orthogonal matrices (columns of equal length; with weight norm, of the
        # gain's length) and the N(0, 1) byte embedding keep every product of the cell near unit scale at the start.
        for weight in (self.wx, self.wh, self.wmx, self.wmh):
            nn.init.orthogonal_(weight)

    def weights(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """wx, wh, wmx, wmh as the step uses them: each column scaled to its gain's length with weight norm
        (``tf.nn.l2_normalize(w, dim=0) * g``). Computed once per window, not per step."""
        matrices = (self.wx, self.wh, self.wmx, self.wmh)
        if not self.weight_norm:
            return matrices
        gains = (self.gx, self.gh, self.gmx, self.gmh)
        return tuple(F.normalize(w, dim=0, eps=1e-12) * g for w, g in zip(matrices, gains, strict=True))

    def zero_state(self, batch_size: int, like: Tensor) -> State:
        zeros = like.new_zeros(batch_size, self.hidden_size)
        return zeros, zeros

    def forward(
        self,
        x: Tensor,
        state: State | None = None,
        mask: Tensor | None = None,
        fixed: Mapping[int, float] | None = None,
    ) -> tuple[Tensor, State]:
        """Run inputs (batch, time, input_size) from ``state`` (zeros if None).

        Returns every step's hidden state (batch, time, hidden_size) and the final (cell, hidden) state. Where
        ``mask`` (batch, time) is False the state stays as it was (the reference's padding). ``fixed`` holds cell
        units at values after every step (the paper's sentiment-steered samples, section 4).
        """
        wx, wh, wmx, wmh = self.weights()
        c0, h0 = state if state is not None else self.zero_state(x.shape[0], x)
        # The input's share of both products for the whole window in two matmuls: only h waits for the loop.
        xz, xm = x @ wx + self.b, x @ wmx
        if torch.is_grad_enabled() and any(t.requires_grad for t in (xz, xm, wh, wmh, c0, h0)):
            hs, cs = Recurrence.apply(xz, xm, wh, wmh, c0, h0, mask, fixed)
        else:
            hs, cs = recur(xz, xm, wh, wmh, c0, h0, mask, fixed)[:2]
        return hs, (cs[:, -1], hs[:, -1])


def recur(
    xz: Tensor,
    xm: Tensor,
    wh: Tensor,
    wmh: Tensor,
    c: Tensor,
    h: Tensor,
    mask: Tensor | None = None,
    fixed: Mapping[int, float] | None = None,
    keep: bool = False,
) -> tuple[Tensor, ...]:
    """The time loop of ``MLSTMCell`` given the input projections ``xz = x wx + b`` (batch, time, 4 hidden) and
    ``xm = x wmx`` (batch, time, hidden). Returns the hidden and cell states of every step (batch, time,
    hidden), and with ``keep`` what ``Recurrence.backward`` reads: every step's h wmh, m, and gates i, f, o, u
    (batch, time, 4 hidden)."""
    size = wmh.shape[0]
    hs, cs = xm.new_empty(xm.shape), xm.new_empty(xm.shape)
    if keep:
        a_all, m_all, gates = xm.new_empty(xm.shape), xm.new_empty(xm.shape), xz.new_empty(xz.shape)
    if fixed:
        units = torch.tensor(list(fixed), device=c.device)
        values = torch.tensor(list(fixed.values()), dtype=c.dtype, device=c.device).expand(c.shape[0], -1)
    for t in range(xz.shape[1]):
        a = h @ wmh
        m = xm[:, t] * a
        z = torch.addmm(xz[:, t], m, wh)
        g = torch.cat([torch.sigmoid(z[:, : 3 * size]), torch.tanh(z[:, 3 * size :])], 1)
        i, f, o, u = g.chunk(4, 1)
        c_new = torch.addcmul(f * c, i, u)
        if fixed:
            c_new = c_new.index_copy(1, units, values)
        h_new = o * torch.tanh(c_new)
        if mask is not None:
            keep_t = mask[:, t, None]
            c_new, h_new = torch.where(keep_t, c_new, c), torch.where(keep_t, h_new, h)
        c, h = c_new, h_new
        hs[:, t], cs[:, t] = h, c
        if keep:
            a_all[:, t], m_all[:, t], gates[:, t] = a, m, g
    return (hs, cs, a_all, m_all, gates) if keep else (hs, cs)


class Recurrence(torch.autograd.Function):
    """``recur`` with a hand-written backward. Autograd through the loop would form the weights' gradients step
    by step; here the loop carries only the gradients of the state, everything that does not wait on them is
    computed for the whole window before it, and the weights' gradients are one matmul each over every step of
    the window, as cuDNN's RNNs do."""

    @staticmethod
    def forward(
        ctx,
        xz: Tensor,
        xm: Tensor,
        wh: Tensor,
        wmh: Tensor,
        c0: Tensor,
        h0: Tensor,
        mask: Tensor | None,
        fixed: Mapping[int, float] | None,
    ) -> tuple[Tensor, Tensor]:
        hs, cs, a, m, gates = recur(xz, xm, wh, wmh, c0, h0, mask, fixed, keep=True)
        ctx.save_for_backward(xm, wh, wmh, c0, h0, hs, cs, a, m, gates, mask)
        ctx.fixed = list(fixed or ())
        ctx.set_materialize_grads(False)
        return hs, cs

    @staticmethod
    def backward(ctx, grad_hs: Tensor | None, grad_cs: Tensor | None):
        xm, wh, wmh, c0, h0, hs, cs, a, m, gates, mask = ctx.saved_tensors
        i, f, o, u = gates.chunk(4, 2)
        c_prev = torch.cat([c0[:, None], cs[:, :-1]], 1)
        tanh_c = torch.tanh(cs)
        # d loss / d c_t gains dh_t * dc_to_h; d loss / d z_t is (dc, dc, dh, dc) times dz_by, by gate.
        dc_to_h = o * (1 - tanh_c * tanh_c)
        dz_by = torch.cat([u * i * (1 - i), c_prev * f * (1 - f), tanh_c * o * (1 - o), i * (1 - u * u)], 2)
        dz, dm = torch.empty_like(dz_by), torch.empty_like(a)
        dh, dc = torch.zeros_like(h0), torch.zeros_like(c0)  # flowing back from the step after
        for t in reversed(range(xm.shape[1])):
            if grad_hs is not None:
                dh = dh + grad_hs[:, t]
            if grad_cs is not None:
                dc = dc + grad_cs[:, t]
            if mask is not None:  # a padded step copied the state: its gradient passes on unchanged
                skip = ~mask[:, t, None]
                dh_through, dc_through = dh * skip, dc * skip
                dh, dc = dh * ~skip, dc * ~skip
            dc = torch.addcmul(dc, dh, dc_to_h[:, t])
            if ctx.fixed:  # a held unit's value depends on nothing
                dc[:, ctx.fixed] = 0
            torch.mul(torch.cat([dc, dc, dh, dc], 1), dz_by[:, t], out=dz[:, t])
            torch.mm(dz[:, t], wh.T, out=dm[:, t])
            dh, dc = (dm[:, t] * xm[:, t]) @ wmh.T, dc * f[:, t]
            if mask is not None:
                dh, dc = dh + dh_through, dc + dc_through
        da = dm * xm
        h_prev = torch.cat([h0[:, None], hs[:, :-1]], 1)
        grad_wh = m.flatten(0, 1).T @ dz.flatten(0, 1)
        grad_wmh = h_prev.flatten(0, 1).T @ da.flatten(0, 1)
        return dz, dm * a, grad_wh, grad_wmh, dc, dh, None, None


def left_padded(texts: Sequence[bytes]) -> tuple[Tensor, Tensor]:
    """Preprocessed texts as one batch of byte ids, left-padded (the state waits over the padding, so a text's
    final state does not depend on its batch), and the mask of the real bytes."""
    width = max(len(text) for text in texts)
    ids = torch.zeros(len(texts), width, dtype=torch.long)
    mask = torch.zeros(len(texts), width, dtype=torch.bool)
    for row, text in enumerate(texts):
        ids[row, width - len(text) :] = torch.tensor(list(text))
        mask[row, width - len(text) :] = True
    return ids, mask


class MLSTM(L.LightningModule):
    """Byte-level mLSTM language model. Defaults are the paper's (section 3): 4096 units, 64-wide byte
    embedding, weight normalisation, Adam at 5e-4 decayed linearly to zero over the run. A batch is
    (input bytes, next bytes), each (batch, window); consecutive batches continue the same streams, so the
    state carries over (truncated backpropagation) until the data module starts a new pass (batch_idx 0)."""

    feature_input = "texts"  # radford.eval.probe.TextFeatures
    feature_description = "final cell state"  # what radford probe reports and plots
    throughput_unit = "bytes"  # radford.throughput.SpeedMonitor logs bytes_per_sec

    def __init__(
        self,
        vocab_size: int = VOCAB_SIZE,
        embedding_size: int = 64,
        hidden_size: int = 4096,
        weight_norm: bool = True,
        learning_rate: float = 5e-4,
        decay_steps: int | None = None,
    ):
        super().__init__()
        for name, value in (
            ("vocab_size", vocab_size),
            ("embedding_size", embedding_size),
            ("hidden_size", hidden_size),
        ):
            if value <= 0:
                raise RadfordError(f"{name} must be positive, got {value}")
        self.save_hyperparameters()
        self.embd = nn.Embedding(vocab_size, embedding_size)
        self.rnn = MLSTMCell(embedding_size, hidden_size, weight_norm)
        self.out = nn.Linear(hidden_size, vocab_size)
        self.eval_bpb = nn.ModuleDict({"val": MeanMetric(), "test": MeanMetric()})
        # The state carried between consecutive windows; training's is kept aside while validating.
        self._state: State | None = None
        self._train_state: State | None = None

    def forward(
        self,
        input_ids: Tensor,
        state: State | None = None,
        mask: Tensor | None = None,
        fixed: Mapping[int, float] | None = None,
    ) -> tuple[Tensor, State]:
        """Next-byte logits (batch, time, 256) and the final (cell, hidden) state."""
        hs, state = self.rnn(self.embd(input_ids), state, mask, fixed)
        return self.out(hs), state

    # -- features and generation -------------------------------------------------------------------------

    def features(self, texts: Sequence[str], batch_size: int = 64) -> Tensor:
        """The final cell state (N, hidden_size) after each text, preprocessed as the reference does, from a zero
        state (the reference's ``transform``). Texts of a batch are left-padded and the state waits over the
        padding, so a text's features do not depend on its batch."""
        encoded = [preprocess(text) for text in texts]
        result = torch.empty(len(encoded), self.hparams.hidden_size)
        device = self.out.weight.device
        with inference(self):
            for rows in length_sorted_batches([len(e) for e in encoded], batch_size):
                ids, mask = left_padded([encoded[i] for i in rows])
                _, (c, _) = self.rnn(self.embd(ids.to(device)), mask=mask.to(device))
                result[rows] = c.float().cpu()
        return result

    def generate(
        self,
        input_ids: Tensor,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        generator: torch.Generator | None = None,
        fix_units: Mapping[int, float] | None = None,
    ) -> Iterator[Tensor]:
        """Continue byte prompts (batch, time), yielding the next bytes (batch,) one step at a time; sampling as
        GPT's (see ``radford.models.common.sample``). ``fix_units`` holds cell units at values while the prompt is
        read and every byte is sampled: the paper's sentiment-controlled reviews (section 4, table 3)."""
        check_sampling(input_ids, max_new_tokens, temperature, top_k, top_p, unit="byte")
        fixed = dict(fix_units or {})
        bad = [unit for unit in fixed if not 0 <= unit < self.hparams.hidden_size]
        if bad:
            raise RadfordError(
                f"unit {bad[0]} does not exist: this mLSTM's units are 0 to {self.hparams.hidden_size - 1}"
            )
        pick = sampler(temperature, top_k, top_p, generator)
        # A function that returns the generator, so that the checks above run at the call, not at the first step.
        return self._generate(input_ids, max_new_tokens, pick, fixed)

    def _generate(
        self, ids: Tensor, max_new_tokens: int, pick: Callable[[Tensor], Tensor], fixed: dict[int, float]
    ) -> Iterator[Tensor]:
        state, new = None, ids  # the state is the whole context: each step reads one byte
        for _ in range(max_new_tokens):
            with inference(self):
                logits, state = self(new, state, fixed=fixed)
                new = pick(logits[:, -1])[:, None]
            yield new[:, 0].clone()

    # -- training ----------------------------------------------------------------------------------------

    def _bits_per_byte(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        """Mean bits per byte of a window, from the state the previous window of the same pass left (detached:
        gradients stop at the window's start, the truncation of backpropagation)."""
        x, y = batch
        if batch_idx == 0 or self._state is None or self._state[0].shape[0] != x.shape[0]:
            self._state = None
        logits, state = self(x, self._state)
        self._state = (state[0].detach(), state[1].detach())
        return F.cross_entropy(logits.flatten(0, 1), y.flatten()) / math.log(2)

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        bpb = self._bits_per_byte(batch, batch_idx)
        if logging_step(self._trainer):
            self.log("train_bpb", bpb, prog_bar=True)
        return bpb  # nats / ln 2: Adam's steps do not change with a constant factor of the loss

    def on_validation_start(self) -> None:
        self._train_state, self._state = self._state, None

    def on_validation_end(self) -> None:
        self._state = self._train_state  # training continues its streams where it left them

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, batch_idx, "val")

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, batch_idx, "test")

    def _evaluate(self, batch: tuple[Tensor, Tensor], batch_idx: int, split: str) -> None:
        self.eval_bpb[split].update(self._bits_per_byte(batch, batch_idx), weight=batch[1].numel())
        self.log(f"{split}_bpb", self.eval_bpb[split], prog_bar=split == "val")

    def training_flops(self, batch: tuple[Tensor, Tensor]) -> int:
        """Model FLOPs of a training step on ``batch`` for ``radford.throughput.SpeedMonitor``'s MFU: the window's
        forward and hand-written backward, counted on a meta copy (nothing is computed)."""
        twin = on_meta(self)
        ids = batch[0].to("meta")
        return flop_count(lambda: twin(ids)[0].sum().backward())

    def configure_optimizers(self):
        hp = self.hparams
        optimizer = adam(torch.optim.Adam, self, self.parameters(), hp.learning_rate)
        steps = hp.decay_steps if hp.decay_steps is not None else self.trainer.estimated_stepping_batches
        # Section 3: "the learning rate was decayed linearly to zero over the course of training".
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: max(0.0, 1.0 - step / max(steps, 1)))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
