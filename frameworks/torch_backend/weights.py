"""Map the model's parameters to and from the shared numpy naming scheme (frameworks/base.py).

The scheme has one LSTM bias per layer; PyTorch has two. Export sums them, load puts the bias in
b_ih and zeroes b_hh, so a load/export round trip is exact and both frameworks compute the same
pre-activations. A GRU keeps both (`bias` = b_ih, `bias_hh` = b_hh): its b_hn sits inside the
reset product and cannot be folded.
"""

from __future__ import annotations

import numpy as np
import torch

from frameworks.base import check_weights
from frameworks.torch_backend.model import DropoutLSTMModel


def export_weights(model: DropoutLSTMModel) -> dict[str, np.ndarray]:
    spec = model.spec

    def arr(t: torch.Tensor) -> np.ndarray:
        return t.detach().to("cpu", torch.float32).numpy().copy()

    out = {"embedding": arr(model.embedding.weight)}
    for k in range(spec.num_layers):
        w_ih, w_hh, b_ih, b_hh = model.rnn_params(k)
        out[f"rnn.{k}.w_ih"] = arr(w_ih)
        out[f"rnn.{k}.w_hh"] = arr(w_hh)
        if spec.cell_info.bias_hh:
            out[f"rnn.{k}.bias"], out[f"rnn.{k}.bias_hh"] = arr(b_ih), arr(b_hh)
        else:
            out[f"rnn.{k}.bias"] = arr(b_ih + b_hh)
    if not spec.tie_weights:
        out["decoder.weight"] = arr(model.decoder.weight)
    out["decoder.bias"] = arr(model.decoder.bias)
    return out


@torch.no_grad()
def load_weights(model: DropoutLSTMModel, weights: dict[str, np.ndarray]) -> None:
    spec = model.spec
    check_weights(spec, weights)

    def put(param: torch.Tensor, value: np.ndarray) -> None:
        param.copy_(torch.as_tensor(np.asarray(value), dtype=param.dtype, device=param.device))

    put(model.embedding.weight, weights["embedding"])
    for k in range(spec.num_layers):
        w_ih, w_hh, b_ih, b_hh = model.rnn_params(k)
        put(w_ih, weights[f"rnn.{k}.w_ih"])
        put(w_hh, weights[f"rnn.{k}.w_hh"])
        put(b_ih, weights[f"rnn.{k}.bias"])
        if spec.cell_info.bias_hh:
            put(b_hh, weights[f"rnn.{k}.bias_hh"])
        else:
            b_hh.zero_()
    if not spec.tie_weights:
        put(model.decoder.weight, weights["decoder.weight"])
    put(model.decoder.bias, weights["decoder.bias"])
