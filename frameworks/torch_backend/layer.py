"""One LSTM layer that applies whichever masks its variant uses.

The parameters always live in a single-layer fused `nn.LSTM`, so the numpy naming scheme maps
onto one module. Without masks (rate 0, or evaluation) every variant runs that fused kernel and
is exactly the no-dropout layer. WeightDrop keeps the raw `weight_hh_l0` Parameter and passes the
masked tensor through `torch.func.functional_call`, so nothing on the module is ever replaced
(the awd train -> eval -> train and deepcopy bugs cannot happen) and the mask is drawn once per
forward. The Gal family runs an explicit time loop only when it has masks: by default the
hand-written BPTT of gal_bptt.py; RDS_TORCH_GAL=eager selects the plain autograd loops of gal.py,
and RDS_TORCH_COMPILE=1 runs those through torch.compile.
"""

from __future__ import annotations

import os

from torch import Tensor, nn
from torch.func import functional_call

from frameworks.spec import GAL_FAMILY, Variant
from frameworks.torch_backend import gal, gal_bptt
from frameworks.torch_backend.compile import enabled as compile_enabled
from frameworks.torch_backend.compile import maybe_compile

State = tuple[Tensor, Tensor]  # (h, c), each (1, B, H)

GAL_IMPL = {Variant.KERAS_IMPL0: 0, Variant.KERAS_IMPL1: 1, Variant.KERAS_IMPL2: 2}


def masked_weight_hh(weight: Tensor, mask: Tensor) -> Tensor:
    """weight_hh (4H, H) times a (4H, H), (4H, 1) or (1, H) mask, or per-gate (4, 1, H) masks."""
    if mask.dim() == 3:
        hid = weight.shape[1]
        return (weight.view(4, hid, hid) * mask).view(4 * hid, hid)
    return weight * mask


class LSTMLayer(nn.Module):
    """A single LSTM layer, batch-first, (B, T, D) -> (B, T, H)."""

    def __init__(self, input_size: int, hidden_size: int, variant: Variant):
        super().__init__()
        self.lstm = nn.LSTM(input_size, hidden_size, batch_first=True)
        self.variant = Variant(variant)

    def forward(
        self,
        x: Tensor,
        state: State,
        input_mask: Tensor | None = None,
        recurrent_mask: Tensor | None = None,
        weight_mask: Tensor | None = None,
    ) -> tuple[Tensor, State]:
        if self.variant in GAL_FAMILY and (input_mask is not None or recurrent_mask is not None):
            return self._gal(x, state, input_mask, recurrent_mask)
        if input_mask is not None:  # naive (B, T, D) or locked (Bm, 1, D)
            x = x * input_mask
        if weight_mask is not None:
            weight = masked_weight_hh(self.lstm.weight_hh_l0, weight_mask)
            return functional_call(self.lstm, {"weight_hh_l0": weight}, (x, state))
        return self.lstm(x, state)

    def _gal(
        self, x: Tensor, state: State, m_in: Tensor | None, m_rec: Tensor | None
    ) -> tuple[Tensor, State]:
        lstm = self.lstm
        impl = GAL_IMPL[self.variant]
        bias = lstm.bias_ih_l0 + lstm.bias_hh_l0
        args = (x, state[0][0], state[1][0], lstm.weight_ih_l0, lstm.weight_hh_l0, bias)
        if gal_loop_kind() == "bptt" and not compile_enabled():
            out, h, c = gal_bptt.gal_loop(impl, *args, m_in, m_rec)
        else:
            out, h, c = maybe_compile(gal.IMPLS[impl])(*args, m_in, m_rec)
        return out, (h.unsqueeze(0), c.unsqueeze(0))


def gal_loop_kind() -> str:
    """`bptt` (default, hand-written backward) or `eager` (autograd through gal.py)."""
    kind = os.environ.get("RDS_TORCH_GAL", "bptt").strip().lower() or "bptt"
    if kind not in ("bptt", "eager"):
        raise ValueError(f"RDS_TORCH_GAL={kind!r} must be bptt or eager")
    return kind
