"""One recurrent layer (LSTM or GRU) that applies whichever masks its variant draws, by slot.

The parameters always live in a single-layer fused `nn.LSTM` / `nn.GRU`, so the numpy naming
scheme maps onto one module. Without masks or hooks (rate 0, or evaluation) every variant runs
that fused kernel and is exactly the no-dropout layer. A sequence-level input mask multiplies
the input first; a weight mask is passed through `torch.func.functional_call`, so nothing on the
module is ever replaced (the awd train -> eval -> train and deepcopy bugs cannot happen). Masks
inside the recurrence (Gal's input and h_{t-1} masks) and per-step hooks run a per-step loop on
the path frameworks/compute.py chooses from compute.py's list (the compiled loop, the Gal
family's hand-written BPTT, the autograd loop); the path taken is recorded per runner and logged
with the run (`compute_path`).
"""

from __future__ import annotations

from torch import Tensor, nn
from torch.func import functional_call

from frameworks import variants
from frameworks.compute import Compute, PathRecord, candidates
from frameworks.spec import ModelSpec
from frameworks.torch_backend import cells, compute, fused_loop, hooks
from frameworks.torch_backend.compile import compiled

State = tuple[Tensor, Tensor]  # (h, c), each (1, B, H); a GRU's c is carried untouched
MODULES = {"lstm": nn.LSTM, "gru": nn.GRU}


def masked_weight_hh(weight: Tensor, mask: Tensor) -> Tensor:
    """weight_hh (GH, H) times a (GH, H), (GH, 1) or (1, H) mask, or per-gate (G, 1, H) masks."""
    if mask.dim() == 3:
        hid = weight.shape[1]
        return (weight.view(mask.shape[0], hid, hid) * mask).view(-1, hid)
    return weight * mask


class RNNLayer(nn.Module):
    """A single recurrent layer, batch-first, (B, T, D) -> (B, T, H)."""

    def __init__(self, input_size: int, hidden_size: int, spec: ModelSpec, k: int,
                 settings: Compute, paths: PathRecord):
        super().__init__()
        self.spec, self.k = spec, k
        self.settings, self.paths = settings, paths
        self.cell = spec.cell.value
        self.rnn = MODULES[self.cell](input_size, hidden_size, batch_first=True)
        self.entry = variants.entry(spec.variant)

    def forward(self, x: Tensor, state: State, masks: dict[str, Tensor]) -> tuple[Tensor, State]:
        k = self.k
        m_in, m_rec = masks.get(f"input.{k}"), masks.get(f"recurrent.{k}")
        if m_in is not None and self.entry.sequence_input:  # naive (B, T, D) or (Bm, 1, D)
            x, m_in = x * m_in, None
        weights = {}
        if f"weight.{k}" in masks:
            weights["weight_hh_l0"] = masked_weight_hh(self.rnn.weight_hh_l0, masks[f"weight.{k}"])
        step_hooks = hooks.for_layer(self.spec, k, masks)
        if m_in is None and m_rec is None and not step_hooks:
            return self._fused(x, state, weights)
        return self._loop(x, state, weights.get("weight_hh_l0", self.rnn.weight_hh_l0),
                          m_in, m_rec, step_hooks)

    def _fused(self, x: Tensor, state: State, weights: dict[str, Tensor]) -> tuple[Tensor, State]:
        carry = state if self.cell == "lstm" else state[0]
        if weights:
            out, new = functional_call(self.rnn, weights, (x, carry))
        else:
            out, new = self.rnn(x, carry)
        return out, (new if self.cell == "lstm" else (new, state[1]))

    def _loop(self, x: Tensor, state: State, w_hh: Tensor, m_in: Tensor | None,
              m_rec: Tensor | None, step_hooks: list[cells.StepHook]) -> tuple[Tensor, State]:
        rnn = self.rnn
        h0, c0 = state[0][0], state[1][0]
        if self.cell == "lstm":  # one bias: b_hh is frozen at zero
            bias, bias_hh = rnn.bias_ih_l0 + rnn.bias_hh_l0, None
        else:
            bias, bias_hh = rnn.bias_ih_l0, rnn.bias_hh_l0
        call = compute.call_for(self.cell, x, self.entry.order, step_hooks)
        for path in candidates(compute.PATHS, self.settings, call, compute.SETTING):
            if path.name == "cpp":  # None: no build on this machine (it warned once)
                done = fused_loop.run(self.cell, x, h0, c0, rnn.weight_ih_l0, w_hh, bias,
                                      bias_hh, m_in, m_rec, step_hooks)
            else:
                loop = compiled(cells.run) if path.name == "compile" else cells.run
                done = loop(self.cell, x, h0, c0, rnn.weight_ih_l0, w_hh, bias, bias_hh, m_in,
                            m_rec, step_hooks)
            if done is not None:
                self.paths.note(path.name)
                out, h, c = done
                return out, (h.unsqueeze(0), c.unsqueeze(0))
        raise AssertionError("the autograd loop computes every call")
