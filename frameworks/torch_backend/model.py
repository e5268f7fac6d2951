"""The matched PyTorch model: embedding -> stacked LSTM/GRU -> (last step) -> dropout -> decoder.

One class serves both task kinds: the language model returns (B, T, C) logits and the classifier
(B, C) logits from the last time step of the last layer (inputs are pre-padded, so the last step
is real). Every mask of a forward call is drawn up front, in the contract's order, through the
model's sampler; `torch_builtin` alone uses nn.LSTM's own between-layer dropout and library RNG.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from frameworks.compute import DEFAULT, Compute
from frameworks.masks import EVAL, TRAIN, mask_plan
from frameworks.spec import ModelSpec, TaskKind, Variant
from frameworks.torch_backend.compute import record
from frameworks.torch_backend.layer import RNNLayer
from frameworks.torch_backend.sampler import MaskSampler

State = tuple[Tensor, Tensor]  # (h, c), each (num_layers, B, H); a GRU's c stays zero


class DropoutLSTMModel(nn.Module):
    """Builds the variant's layers from a `ModelSpec`; draws masks through `sampler`."""

    def __init__(self, spec: ModelSpec, sampler: MaskSampler, compute: Compute = DEFAULT):
        super().__init__()
        self.spec = spec
        self.sampler = sampler
        self.paths = record()  # what computed the per-step loops (logged as compute_path)
        e, h, layers = spec.embed_size, spec.hidden_size, spec.num_layers
        self.embedding = nn.Embedding(spec.vocab_size, e)
        self.builtin = spec.variant is Variant.TORCH_BUILTIN
        if self.builtin:
            self.rnn = nn.LSTM(
                e, h, num_layers=layers, batch_first=True, dropout=spec.rate("input")
            )
        else:
            self.layers = nn.ModuleList(
                RNNLayer(e if k == 0 else h, h, spec, k, compute, self.paths) for k in range(layers)
            )
        self.decoder = nn.Linear(h, spec.num_outputs)
        if spec.tie_weights:
            self.decoder.weight = self.embedding.weight
        for k in range(layers):
            if spec.cell_info.bias_hh:
                continue  # a GRU's recurrent bias sits inside the reset product: it trains
            # One trainable bias per LSTM layer, as in the naming scheme and in Keras: with two,
            # SGD, Adam, weight decay and the clipping norm would all see the bias twice.
            bias_hh = self.rnn_params(k)[3]
            nn.init.zeros_(bias_hh)
            bias_hh.requires_grad_(False)

    def rnn_params(self, k: int) -> tuple[nn.Parameter, nn.Parameter, nn.Parameter, nn.Parameter]:
        """(weight_ih, weight_hh, bias_ih, bias_hh) of layer k."""
        lstm, s = (self.rnn, k) if self.builtin else (self.layers[k].rnn, 0)
        names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
        return tuple(getattr(lstm, f"{n}_l{s}") for n in names)  # type: ignore[return-value]

    def zero_state(self, batch: int) -> State:
        w = self.embedding.weight
        z = w.new_zeros(self.spec.num_layers, batch, self.spec.hidden_size)
        return z, z.clone()

    def draw_masks(self, batch: int, steps: int) -> dict[str, Tensor]:
        """All masks of one forward call, in the contract's draw order."""
        mode = TRAIN if self.training else EVAL
        dtype = self.embedding.weight.dtype
        return {
            r.name: self.sampler.draw(r.name, r.shape, r.rate, dtype=dtype)
            for r in mask_plan(self.spec, batch, steps, mode)
        }

    def forward(self, x: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        batch, steps = x.shape
        masks = self.draw_masks(batch, steps)
        if state is None:
            state = self.zero_state(batch)
        weight = self.embedding.weight
        if "embedding" in masks:  # word-type dropout: whole rows, every occurrence in the batch
            weight = weight * masks["embedding"]
        out = F.embedding(x, weight)
        if self.builtin:
            out, state = self.rnn(out, state)
        else:
            hs, cs = [], []
            for k, layer in enumerate(self.layers):
                out, (h, c) = layer(out, (state[0][k : k + 1], state[1][k : k + 1]), masks)
                hs.append(h)
                cs.append(c)
            state = (torch.cat(hs), torch.cat(cs))
        if self.spec.task_kind is TaskKind.CLASSIFIER:
            out = out[:, -1]
        if "output" in masks:
            out = out * masks["output"]
        return self.decoder(out), state
