"""What every VQ-VAE of speechvq does with its parts, written once: keep some fixed while the
rest trains (``train.freeze``) and start from another run's weights (``train.init_from``).

    class ImageVQVAE(Freezable, nn.Module): ...
    model.freeze_(["encoder", "quantizer"])     # no gradients, always in eval mode
    untouched = model.init_from_(state, "exp/a")  # tensors with matching names and shapes
"""

from __future__ import annotations

from typing import Sequence

from torch import nn

from speechvq.errors import ModelError


class Freezable(nn.Module):
    """Base of a model with named submodules that may be frozen; its ``__init__`` sets
    ``self.frozen = set()`` before building them."""

    frozen: set[str]

    def freeze_(self, names: Sequence[str]) -> None:
        """Keep these submodules fixed: no gradients, and always in eval mode (a frozen
        quantiser's EMA codebook does not move, a frozen encoder has no dropout).

        Raises:
            ModelError: this model has no such module (a head with weight 0 is not built).
        """
        for name in names:
            module = getattr(self, name, None)
            if not isinstance(module, nn.Module):
                raise ModelError(f"cannot freeze '{name}': this model has no such module (a head "
                                 f"with weight 0 is not built); check train.freeze")
            module.requires_grad_(False)
            self.frozen.add(name)
        self.train(self.training)

    def train(self, mode: bool = True):
        super().train(mode)
        for name in self.frozen:
            getattr(self, name).eval()
        return self

    def init_from_(self, state: dict, source: str) -> list[str]:
        """Copy every tensor of a checkpoint's model state whose name and shape match.

        Returns:
            the names of this model's tensors that were not in the checkpoint (left as they are).
        Raises:
            ModelError: nothing matches.
        """
        own = self.state_dict()
        matched = {k: v for k, v in state["model"].items()
                   if k in own and own[k].shape == v.shape}
        if not matched:
            raise ModelError(f"train.init_from '{source}' shares no tensor with this model")
        self.load_state_dict(matched, strict=False)
        return sorted(set(own) - set(matched))


def init_and_freeze_(model: Freezable, train_cfg, *, fresh: bool, rank: int = 0) -> None:
    """Apply ``train.init_from`` (on a fresh run only: a resumed run takes everything from its
    own checkpoint) and then ``train.freeze`` to a task's newly built `model`."""
    import sys

    from speechvq.checkpoint import load_checkpoint, resolve_checkpoint

    if train_cfg.init_from and fresh:
        state = load_checkpoint(resolve_checkpoint(train_cfg.init_from))
        untouched = model.init_from_(state, train_cfg.init_from)
        if rank == 0:
            kept = sorted({k.split(".")[0] for k in untouched})
            print(f"train: initialised from {train_cfg.init_from}"
                  + (f"; new: {', '.join(kept)}" if kept else ""), file=sys.stderr)
    model.freeze_(train_cfg.freeze)
