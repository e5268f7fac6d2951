"""model.init: each scheme starts the model as its framework's own layers would (checked against
the stock Keras and PyTorch layers' initial weights, not against this suite's code), identically
in both backends for the same seed."""

from __future__ import annotations

import numpy as np
import pytest

from experiments import config as C
from frameworks.base import initial_weights
from frameworks.spec import ModelSpec
from tests.conftest import compose_cfg

H, D, V, C_OUT = 32, 24, 400, 2


def _spec(init: str, cell: str = "lstm", **kw) -> ModelSpec:
    return ModelSpec("classifier", V, C_OUT, D, H, 1, "none", cell=cell, init=init, **kw)


def test_uniform_is_uniform_in_init_scale_and_seeded():
    a = initial_weights(_spec("uniform", init_scale=0.3), 0)
    assert all(np.abs(w).max() <= 0.3 for w in a.values())
    assert np.abs(a["embedding"]).max() > 0.29  # fills the interval
    b = initial_weights(_spec("uniform", init_scale=0.3), 0)
    c = initial_weights(_spec("uniform", init_scale=0.3), 1)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["rnn.0.w_hh"], c["rnn.0.w_hh"])


@pytest.mark.keras
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_keras_scheme_matches_stock_keras_layers(cell):
    import keras

    ours = initial_weights(_spec("keras", cell), 0)
    layer = {"lstm": keras.layers.LSTM, "gru": keras.layers.GRU}[cell](H)
    layer.build((None, 5, D))
    kernel, recurrent, bias = (np.asarray(w) for w in layer.get_weights())
    # bias: exactly Keras' (zeros, the LSTM forget block ones; the GRU's two rows zero)
    assert np.array_equal(ours["rnn.0.bias"], bias.reshape(-1, 3 * H)[0] if cell == "gru"
                          else bias)
    if cell == "gru":
        assert np.array_equal(ours["rnn.0.bias_hh"], bias[1])
    # kernel: the same uniform interval as Keras' (both fill it)
    assert np.isclose(np.abs(ours["rnn.0.w_ih"]).max(), np.abs(kernel).max(), rtol=0.03)
    # recurrent: orthogonal like Keras' ((H, G*H) rows orthonormal; ours is its transpose)
    assert np.allclose(recurrent @ recurrent.T, np.eye(H), atol=1e-5)
    assert np.allclose(ours["rnn.0.w_hh"].T @ ours["rnn.0.w_hh"], np.eye(H), atol=1e-5)
    embedding = keras.layers.Embedding(V, D)
    embedding.build((None, 5))
    assert np.isclose(np.abs(ours["embedding"]).max(), np.abs(embedding.get_weights()[0]).max(),
                      rtol=0.02)
    dense = keras.layers.Dense(C_OUT)
    dense.build((None, H))
    d_kernel, d_bias = dense.get_weights()
    assert np.isclose(np.abs(ours["decoder.weight"]).max(), np.abs(d_kernel).max(), rtol=0.15)
    assert np.array_equal(ours["decoder.bias"], d_bias)


def test_torch_scheme_matches_stock_torch_modules():
    import torch

    torch.manual_seed(0)
    ours = initial_weights(_spec("torch"), 0)
    lstm, emb, lin = torch.nn.LSTM(D, H), torch.nn.Embedding(V, D), torch.nn.Linear(H, C_OUT)
    assert np.isclose(np.abs(ours["rnn.0.w_ih"]).max(), lstm.weight_ih_l0.abs().max().item(),
                      rtol=0.02)
    assert np.isclose(np.abs(ours["rnn.0.w_hh"]).max(), lstm.weight_hh_l0.abs().max().item(),
                      rtol=0.02)
    torch_bias = (lstm.bias_ih_l0 + lstm.bias_hh_l0).detach().numpy()  # the one bias, summed
    assert np.isclose(ours["rnn.0.bias"].std(), torch_bias.std(), rtol=0.25)
    assert np.isclose(ours["embedding"].std(), emb.weight.std().item(), rtol=0.05)
    assert np.isclose(np.abs(ours["decoder.weight"]).max(), lin.weight.abs().max().item(),
                      rtol=0.3)


def test_both_backends_start_from_the_scheme_weights():
    """The runners start from `initial_weights` whatever the scheme (matched pairs)."""
    from frameworks.base import load_backend
    from frameworks.spec import OptimSpec

    spec = _spec("keras")
    runner = load_backend("torch").Runner(spec, OptimSpec("adam"), seed=3)
    expected = initial_weights(spec, 3)
    got = runner.export_weights()
    assert all(np.allclose(got[k], expected[k]) for k in expected)


def test_model_init_is_in_the_config_hash_and_reaches_the_spec():
    base = compose_cfg([])
    keras_init = compose_cfg(["model.init=keras"])
    assert C.config_hash(base) != C.config_hash(keras_init)
    assert C.config_hash(compose_cfg(["model.init=uniform"])) == C.config_hash(base)
    assert C.to_spec(keras_init, 100, 2).init.value == "keras"
