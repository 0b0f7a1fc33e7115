"""One feature vector per text key on disk: `<dir>/<key[:2]>/<key>.npy`, written atomically (temp, then rename).

Shared by the critic's pair features (critic/learned.py) and the layer features of experiments
(experiments/w2s_probe/layer_features.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np


def load_vectors(cache: Path, keys: Iterable[str]) -> dict[str, np.ndarray]:
    """The cached vector of every key that has one."""
    import numpy as np

    out: dict[str, np.ndarray] = {}
    for k in set(keys):
        f = cache / k[:2] / f"{k}.npy"
        if f.is_file():
            out[k] = np.load(f)
    return out


def save_vector(cache: Path, key: str, v: np.ndarray) -> None:
    """Write one vector so a reader sees it whole or not at all."""
    import numpy as np

    (cache / key[:2]).mkdir(parents=True, exist_ok=True)
    tmp = cache / key[:2] / f".{key}.tmp.npy"
    np.save(tmp, v)
    tmp.replace(cache / key[:2] / f"{key}.npy")
