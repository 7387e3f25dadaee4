"""Give a model trained before uncertainty bands its band, from its own validation curves.

Usage: .venv/bin/python scripts/calibrate_band.py MODEL_DIR

Training now ends with a band (``ml.uncertainty``); a model from before has none. Its training
curves are regenerated from the dataset settings in its model.json (the seed makes them the same
curves), split as training split them, and its predictions on the validation split calibrate the
band; the test split gives its coverage. model.json gains ``metrics.band`` and nothing else changes
(the weights are untouched, so the built-in model's checksum still holds). Refused for a model whose
curves cannot be regenerated (uploaded arrays, imported weights).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from reflect_core.data.generate import NR_FILE, SLD_FILE, dataset_from_dict, generate  # noqa: E402
from reflect_core.ml.meta import ModelMeta  # noqa: E402
from reflect_core.ml.predict import predict  # noqa: E402
from reflect_core.ml.training import split_indices  # noqa: E402
from reflect_core.ml.uncertainty import calibrate  # noqa: E402


def calibrate_model(model_dir: Path) -> str:
    meta = ModelMeta.read(model_dir)
    if not meta.dataset or "prior" not in meta.dataset or meta.training is None:
        raise SystemExit(f"{model_dir}: its training curves cannot be regenerated (no generated dataset settings)")
    config = dataset_from_dict(meta.dataset)
    with tempfile.TemporaryDirectory(prefix="band_") as tmp:
        folder = generate(config, Path(tmp))
        nr, sld = np.load(folder / NR_FILE), np.load(folder / SLD_FILE)[:, 1]
    if not np.allclose(nr[0, 0], meta.q, rtol=1e-6) or sld.shape[1] != meta.z.size:
        raise SystemExit(f"{model_dir}: the regenerated curves are not on the model's grids")
    _, val, test = split_indices(len(nr), meta.training)
    band = calibrate(predict(model_dir, nr[val])[:, 1], sld[val], predict(model_dir, nr[test])[:, 1], sld[test])
    meta.metrics["band"] = band.to_dict()
    meta.write(model_dir)
    return band.describe()


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    print(calibrate_model(Path(sys.argv[1])))
