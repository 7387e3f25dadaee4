"""Normalisation as pyreflect does it: log10 of R with a floor, then global min-max.

Statistics come from the training split only and travel with the model as JSON
(``to_dict``), or in pyreflect's ``{"nr": {"x", "y"}, "sld": {"x", "y"}}`` layout.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from reflect_core.base.errors import InvalidInput

R_FLOOR = 1e-8  # pyreflect clips R at 1e-8 before log10


@dataclass(frozen=True)
class Normalizer:
    log_r_min: float
    log_r_max: float
    sld_min: float
    sld_max: float
    q_min: float
    q_max: float
    z_min: float
    z_max: float
    r_floor: float = R_FLOOR

    @classmethod
    def fit(cls, nr: np.ndarray, sld: np.ndarray, r_floor: float = R_FLOOR) -> "Normalizer":
        """From training arrays in pyreflect format: NR (N,2,L), SLD (N,2,M)."""
        log_r = np.log10(np.clip(nr[:, 1], r_floor, None))
        values = [float(v) for v in (log_r.min(), log_r.max(), sld[:, 1].min(), sld[:, 1].max(),
                                     nr[:, 0].min(), nr[:, 0].max(), sld[:, 0].min(), sld[:, 0].max())]
        for name, lo, hi in (("log10 R", values[0], values[1]), ("SLD", values[2], values[3])):
            if not hi > lo:
                raise InvalidInput(f"cannot normalise: every training {name} value is {lo:g}")
        return cls(*values, r_floor=r_floor)

    def nr(self, r: np.ndarray) -> np.ndarray:
        """R values (..., L) → network input in [0, 1]."""
        log_r = np.log10(np.clip(r, self.r_floor, None))
        return ((log_r - self.log_r_min) / (self.log_r_max - self.log_r_min)).astype(np.float32)

    def sld(self, sld: np.ndarray) -> np.ndarray:
        return ((sld - self.sld_min) / (self.sld_max - self.sld_min)).astype(np.float32)

    def sld_back(self, normalized: np.ndarray) -> np.ndarray:
        """Network output → SLD in 10⁻⁶ Å⁻²."""
        return normalized * (self.sld_max - self.sld_min) + self.sld_min

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Normalizer":
        return cls(**{k: float(data[k]) for k in cls.__dataclass_fields__})
