"""The PyTorch implementation of the `Runner` protocol in frameworks/base.py.

Numpy at the boundary: batches in, probabilities and weight dicts out. The LM hidden state is
carried across the batches of one call (detached between batches: truncated BPTT) and reset at
the start of every call. Training masks come from the sampler's `train` stream, evaluation masks
(MC dropout, the `eval_active` row mask) from its `eval` stream, and nn.LSTM's own dropout
(torch_builtin) from a runner-private global-RNG state (rng.py), so the training masks of a seed
never depend on how many evaluation passes happened nor on other runners in the process.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from contextlib import AbstractContextManager

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from frameworks.base import DivergenceError
from frameworks.base import initial_weights as numpy_initial_weights
from frameworks.spec import Batch, ModelSpec, OptimSpec, TaskKind, check_framework_variant
from frameworks.torch_backend import weights
from frameworks.torch_backend.model import DropoutLSTMModel, State
from frameworks.torch_backend.rng import LibraryRng
from frameworks.torch_backend.sampler import EVAL, TRAIN, MaskSampler


def make_optimizer(params: Iterable[Tensor], optim: OptimSpec) -> torch.optim.Optimizer:
    """SGD or Adam with coupled L2 weight decay; the lr is set per epoch by `train_epoch`."""
    kinds = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam}
    if optim.name not in kinds:
        raise ValueError(f"optim.name={optim.name!r} is not one of: {', '.join(kinds)}")
    return kinds[optim.name](list(params), lr=1.0, weight_decay=optim.weight_decay)


class Runner:
    """One model, its optimiser and its mask sampler. Starts from `initial_weights(spec, seed)`."""

    def __init__(self, spec: ModelSpec, optim: OptimSpec, seed: int, device: str = "cpu"):
        check_framework_variant("torch", spec.variant)
        self.spec = spec
        self.optim = optim
        self.seed = int(seed)
        self.device = torch.device(device)
        torch.manual_seed(self.seed)
        self.library_rng = LibraryRng(self.seed, self.device)  # nn.LSTM's dropout (torch_builtin)
        self.sampler = MaskSampler(self.seed, self.device)
        self.model = DropoutLSTMModel(spec, self.sampler).to(self.device)
        weights.load_weights(self.model, numpy_initial_weights(spec, self.seed))
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = make_optimizer(self.params, optim)

    def load_weights(self, values: dict[str, np.ndarray]) -> None:
        weights.load_weights(self.model, values)

    def export_weights(self) -> dict[str, np.ndarray]:
        return weights.export_weights(self.model)

    def train_epoch(self, batches: Iterable[Batch], lr: float) -> float:
        """One pass with updates; mean loss per token (LM) or per example (classifier)."""
        self.model.train()
        self.sampler.use(TRAIN)
        for group in self.optimizer.param_groups:
            group["lr"] = float(lr)
        total, count = 0.0, 0
        with self.library_rng.training():
            state: State | None = None
            for i, batch in enumerate(batches):
                x, y = self._tensors(batch)
                logits, state = self.model(x, self._carry(state, x.shape[0]))
                loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
                value = loss.item()
                if not math.isfinite(value):
                    raise DivergenceError(f"non-finite training loss {value} at batch {i}")
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if self.optim.clip_norm > 0:
                    torch.nn.utils.clip_grad_norm_(self.params, self.optim.clip_norm)
                self.optimizer.step()
                state = (state[0].detach(), state[1].detach())
                total += value * y.numel()
                count += y.numel()
        if count == 0:
            raise ValueError("train_epoch got no batches")
        return total / count

    @torch.no_grad()
    def predict(self, batches: Iterable[Batch], stochastic: bool) -> np.ndarray:
        """LM: probability of each target token, B*T per batch in order; classifier: (N, C)."""
        self.model.train(bool(stochastic))
        self.sampler.use(EVAL)
        outputs: list[np.ndarray] = []
        try:
            with self._library_rng(stochastic):
                state: State | None = None
                for batch in batches:
                    x, y = self._tensors(batch)
                    logits, state = self.model(x, self._carry(state, x.shape[0]))
                    outputs.append(self._probabilities(logits, y))
        finally:
            self.sampler.use(TRAIN)
            self.model.train()
        if not outputs:
            raise ValueError("predict got no batches")
        return np.concatenate(outputs)

    def _probabilities(self, logits: Tensor, y: Tensor) -> np.ndarray:
        logp = torch.log_softmax(logits.float(), dim=-1)
        if self.spec.task_kind is TaskKind.LANGUAGE_MODEL:
            probs = logp.gather(-1, y.unsqueeze(-1)).exp().reshape(-1)
        else:
            probs = logp.exp()
        return probs.cpu().numpy()

    def _tensors(self, batch: Batch) -> tuple[Tensor, Tensor]:
        x = torch.as_tensor(np.asarray(batch.x), dtype=torch.long, device=self.device)
        y = torch.as_tensor(np.asarray(batch.y), dtype=torch.long, device=self.device)
        return x, y

    def _carry(self, state: State | None, batch: int) -> State | None:
        """LM: the previous batch's state (None resets it); classifiers start every batch at 0."""
        if self.spec.task_kind is not TaskKind.LANGUAGE_MODEL or state is None:
            return None
        return state if state[0].shape[1] == batch else None

    def _library_rng(self, stochastic: bool) -> AbstractContextManager[None]:
        """Evaluation never touches the training stream; MC passes of torch_builtin run
        nn.LSTM's dropout on a throw-away stream seeded from the sampler's eval stream."""
        seed = self.sampler.seed_for_library() if stochastic and self.model.builtin else 0
        return self.library_rng.evaluation(seed)
