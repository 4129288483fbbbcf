"""What the benchmarks share: a small trained tiny policy, so their figures are reproducible anywhere."""

from __future__ import annotations

import tempfile


def small_policy() -> str:
    """A tiny policy trained on 4,096 demonstrations (about a minute here; cached across runs)."""
    from models.tiny import TinyRecipe, bootstrap
    from models.training import SFTSettings

    recipe = TinyRecipe(n_demos=4096, sft=SFTSettings(epochs=1, learning_rate=2e-3, batch_size=64, max_length=64))
    return str(bootstrap(recipe, tempfile.gettempdir() + "/treeflow-bench-cache"))
