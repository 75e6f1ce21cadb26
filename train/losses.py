"""The paper's loss: binary focal cross-entropy (Lin et al. 2017) on the sigmoid outputs."""

from __future__ import annotations

from edge.errors import ConfigError

DEFAULT_ALPHA = 0.25
DEFAULT_GAMMA = 2.0


def focal_loss(alpha: float | None = DEFAULT_ALPHA, gamma: float = DEFAULT_GAMMA):
    """Keras BinaryFocalCrossentropy; `alpha` None turns class balancing off (alpha unused)."""
    import keras  # noqa: PLC0415

    if gamma < 0:
        raise ConfigError(f"focal gamma must be >= 0, got {gamma}")
    if alpha is not None and not 0.0 < alpha < 1.0:
        raise ConfigError(f"focal alpha must lie in (0, 1), got {alpha}")
    return keras.losses.BinaryFocalCrossentropy(
        apply_class_balancing=alpha is not None,
        alpha=DEFAULT_ALPHA if alpha is None else alpha,
        gamma=gamma,
        name="focal_loss",
    )
