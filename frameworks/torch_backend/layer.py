"""One recurrent layer (LSTM or GRU) that applies whichever masks its variant draws, by slot.

The parameters always live in a single-layer fused `nn.LSTM` / `nn.GRU`, so the numpy naming
scheme maps onto one module. Without masks or hooks (rate 0, or evaluation) every variant runs
that fused kernel and is exactly the no-dropout layer. A sequence-level input mask multiplies
the input first; a weight mask is passed through `torch.func.functional_call`, so nothing on the
module is ever replaced (the awd train -> eval -> train and deepcopy bugs cannot happen). Masks
inside the recurrence (Gal's input and h_{t-1} masks) and per-step hooks run the per-step loop:
with `framework.torch_loop=cpp` the compiled loop of fused_loop.py (every cell and hook it
covers); else for the LSTM's Gal family without hooks the hand-written BPTT of gal_bptt.py
(`bptt`, the default); otherwise the autograd loop of cells.py, through torch.compile when asked
(compute.py). The path taken is recorded (compute.path_used) and logged with the run.
"""

from __future__ import annotations

from torch import Tensor, nn
from torch.func import functional_call

from frameworks import variants
from frameworks.spec import ModelSpec
from frameworks.torch_backend import cells, fused_loop, gal_bptt, hooks
from frameworks.torch_backend.compile import enabled as compile_enabled
from frameworks.torch_backend.compile import maybe_compile
from frameworks.torch_backend.compute import current, note_path

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

    def __init__(self, input_size: int, hidden_size: int, spec: ModelSpec, k: int):
        super().__init__()
        self.spec, self.k = spec, k
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
        loop, compiled = current().loop, compile_enabled()
        done = None
        if loop == "cpp" and not compiled:  # None: not covered here, or no build on this machine
            done = fused_loop.run(self.cell, x, h0, c0, rnn.weight_ih_l0, w_hh, bias, bias_hh,
                                  m_in, m_rec, step_hooks)
        speed_path = (self.cell == "lstm" and not step_hooks and self.entry.order is not None
                      and loop in ("bptt", "cpp") and not compiled)
        if done is not None:
            out, h, c = done
            note_path("cpp")
        elif speed_path:
            out, h, c = gal_bptt.gal_loop(self.entry.order, x, h0, c0, rnn.weight_ih_l0, w_hh,
                                          bias, m_in, m_rec)
            note_path("bptt")
        else:
            out, h, c = maybe_compile(cells.run)(self.cell, x, h0, c0, rnn.weight_ih_l0, w_hh,
                                                 bias, bias_hh, m_in, m_rec, step_hooks)
            note_path("compile" if compiled else "eager")
        return out, (h.unsqueeze(0), c.unsqueeze(0))
