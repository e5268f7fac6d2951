"""The PyTorch implementation of the `Runner` protocol in frameworks/base.py.

Numpy at the boundary: batches in, probabilities and weight dicts out. The LM hidden state is
carried across the batches of one call (detached between batches: truncated BPTT) and reset at
the start of every call. Training masks come from the sampler's `train` stream, evaluation masks
(MC dropout, the `eval_active` row mask) from its `eval` stream, and nn.LSTM's own dropout
(torch_builtin) from a runner-private global-RNG state (rng.py), so the training masks of a seed
never depend on how many evaluation passes happened nor on other runners in the process.
The loop itself (batches, carry and reset of the state, divergence check, loss averaging, mask
streams) is frameworks/loop.py; this module supplies its torch steps.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from frameworks.base import initial_weights as numpy_initial_weights
from frameworks.compute import DEFAULT, Compute, check
from frameworks.loop import PredictStep, RunnerLoop, TrainStep
from frameworks.spec import Batch, ModelSpec, OptimSpec, TaskKind, check_framework_variant
from frameworks.torch_backend import weights
from frameworks.torch_backend.compute import PATHS, SETTING
from frameworks.torch_backend.model import DropoutLSTMModel, State
from frameworks.torch_backend.rng import LibraryRng
from frameworks.torch_backend.sampler import MaskSampler

Inputs = tuple[Tensor, Tensor]  # token ids x and targets y, batch-first, on the runner's device


def make_optimizer(params: Iterable[Tensor], optim: OptimSpec) -> torch.optim.Optimizer:
    """SGD or Adam with coupled L2 weight decay; the lr is set per epoch by `train_epoch`."""
    kinds = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam}
    if optim.name not in kinds:
        raise ValueError(f"optim.name={optim.name!r} is not one of: {', '.join(kinds)}")
    return kinds[optim.name](list(params), lr=1.0, weight_decay=optim.weight_decay)


class Runner(RunnerLoop[Inputs, State]):
    """One model, its optimiser and its mask sampler. Starts from `initial_weights(spec, seed)`.
    `train_epoch` and `predict` are the shared loop; this class supplies its torch steps."""

    def __init__(self, spec: ModelSpec, optim: OptimSpec, seed: int, device: str = "cpu",
                 compute: Compute = DEFAULT):
        check_framework_variant("torch", spec.variant)
        self.spec = spec
        self.optim = optim
        self.seed = int(seed)
        self.device = torch.device(device)
        torch.manual_seed(self.seed)
        self.library_rng = LibraryRng(self.seed, self.device)  # nn.LSTM's dropout (torch_builtin)
        self.sampler = MaskSampler(self.seed, self.device)
        compute = check(PATHS, compute, SETTING)
        self.model = DropoutLSTMModel(spec, self.sampler, compute).to(self.device)
        weights.load_weights(self.model, numpy_initial_weights(spec, self.seed))
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = make_optimizer(self.params, optim)

    def compute_path(self) -> str:
        """What computed this runner's per-step loops so far: "cpp"; "eager" where the compiled
        loop was unavailable; "cpp+eager" when a call it does not cover ran the autograd loop;
        "none" where only fused layers ran. Only the run knows (a path falls back per call and
        per machine), so it is logged after training."""
        return self.model.paths.joined()

    def load_weights(self, values: dict[str, np.ndarray]) -> None:
        weights.load_weights(self.model, values)

    def export_weights(self) -> dict[str, np.ndarray]:
        return weights.export_weights(self.model)

    # -- hooks of the shared loop (frameworks/loop.py) -----------------------------------------
    def _inputs(self, batch: Batch) -> Inputs:
        x = torch.as_tensor(np.asarray(batch.x), dtype=torch.long, device=self.device)
        y = torch.as_tensor(np.asarray(batch.y), dtype=torch.long, device=self.device)
        return x, y

    @contextmanager
    def _training(self, lr: float) -> Iterator[TrainStep[Inputs, State]]:
        """Training mode, the epoch's lr, and nn.LSTM's dropout on the runner's training
        stream (torch_builtin)."""
        self.model.train()
        for group in self.optimizer.param_groups:
            group["lr"] = float(lr)
        with self.library_rng.training():
            yield self._train_step

    def _train_step(self, inputs: Inputs, state: State | None) -> tuple[float, State]:
        x, y = inputs
        logits, state = self.model(x, state)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        value = loss.item()
        if math.isfinite(value):  # otherwise no update: the loop raises DivergenceError
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if self.optim.clip_norm > 0:
                torch.nn.utils.clip_grad_norm_(self.params, self.optim.clip_norm)
            self.optimizer.step()
        return value, state

    def _detach(self, state: State) -> State:
        return (state[0].detach(), state[1].detach())

    @contextmanager
    def _evaluating(self, stochastic: bool) -> Iterator[PredictStep[Inputs, State]]:
        """Dropout active only for an MC pass, no autograd, and a library-RNG stream that never
        touches the training one; training mode is back on exit."""
        self.model.train(stochastic)
        try:
            with torch.no_grad(), self._library_rng(stochastic):
                yield self._predict_step
        finally:
            self.model.train()

    def _predict_step(self, inputs: Inputs, state: State | None) -> tuple[np.ndarray, State]:
        x, y = inputs
        logits, state = self.model(x, state)
        return self._probabilities(logits, y), state

    def _probabilities(self, logits: Tensor, y: Tensor) -> np.ndarray:
        logp = torch.log_softmax(logits.float(), dim=-1)
        if self.spec.task_kind is TaskKind.LANGUAGE_MODEL:
            probs = logp.gather(-1, y.unsqueeze(-1)).exp().reshape(-1)
        else:
            probs = logp.exp()
        return probs.cpu().numpy()

    def _library_rng(self, stochastic: bool) -> AbstractContextManager[None]:
        """Evaluation never touches the training stream; MC passes of torch_builtin run
        nn.LSTM's dropout on a throw-away stream seeded from the sampler's eval stream."""
        seed = self.sampler.seed_for_library() if stochastic and self.model.builtin else 0
        return self.library_rng.evaluation(seed)
