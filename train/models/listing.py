"""Text of `train models` and of the recipe epilog of `train fit --help`."""

from __future__ import annotations

from train.models.registry import list_models, model_entry


def format_parameters(count: int | None) -> str:
    if count is None:
        return "?"
    if count >= 1_000_000:
        return f"{count / 1e6:.1f} M"
    return f"{count / 1e3:.0f} k"


def recipe_lines() -> list[str]:
    """`  NAME: --epochs 30 --batch-size 16 ...`, one line per architecture."""
    return [f"  {name}: {model_entry(name).recipe.describe()}" for name in list_models()]


def models_table() -> str:
    """Name, parameters (3 classes), ImageNet weights and description, then each recipe."""
    lines = [f"{'name':<11}{'parameters':>11}  {'imagenet':<9}description"]
    for name in list_models():
        entry = model_entry(name)
        imagenet = "yes" if "imagenet" in entry.pretrained else "no"
        lines.append(f"{name:<11}{format_parameters(entry.parameters):>11}  {imagenet:<9}"
                     f"{entry.description}")
    lines.append("")
    lines.append("default recipes (`train fit` uses them for options not given):")
    lines.extend(recipe_lines())
    return "\n".join(lines)
