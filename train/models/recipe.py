"""Default training recipe of an architecture: what `train fit` uses for an option not given.

A recipe belongs to the architecture. The ResNets get the paper's setup (Konovalenko et al.: focal
loss, uniform random 256x256 crops with flips and quarter turns; the paper names no epochs, batch
or learning rate, so those are Keras' focal-loss defaults with Adam at 1e-3, batch 16, 30 epochs);
`tiny` gets the CPU recipe tuned on generated data (tests/fixtures/model.py trains with it alone).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Recipe:
    epochs: int = 30
    steps_per_epoch: int | None = None  # None: training images / batch size
    batch_size: int = 16
    lr: float = 1e-3
    oversample: float = 0.0
    defect_focus: float = 0.0
    focal_alpha: float | None = 0.25  # None: no class balancing
    focal_gamma: float = 2.0

    def to_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        """One line, in `train fit` option spelling, e.g. `--epochs 30 --batch-size 16 ...`."""
        parts = []
        for key, value in self.to_dict().items():
            shown = {None: "auto" if key == "steps_per_epoch" else "none"}.get(value, value)
            parts.append(f"--{key.replace('_', '-')} {shown}")
        return " ".join(parts)


PAPER_RECIPE = Recipe()
# 12 x 80 batches of 16 crops (about 2 minutes on 2 cores for 240 images); rare classes
# oversampled and half the crops of defective images placed over a defect, so small spots are
# seen often enough; alpha none and gamma 1 because oversampling already balances the classes.
TINY_CPU_RECIPE = Recipe(
    epochs=12, steps_per_epoch=80, batch_size=16, lr=0.002, oversample=2.0, defect_focus=0.5,
    focal_alpha=None, focal_gamma=1.0,
)
