"""A FitConfig and its datasets as refnx objects: one Parameter per layer value (shared by
every contrast), one Structure + ReflectModel + Objective per contrast, one GlobalObjective.

Conventions checked in refnx 0.1.67's source (paths under site-packages/refnx):
- Layer order: a Structure runs from the fronting (the medium the beam comes through) to
  the backing, and a Slab's ``rough`` is the interface toward the fronting (structure.py,
  ``Slab`` docstring "roughness on top of this slab", and ``Structure.slabs`` "roughness between
  layer N and N-1"). Our films run substrate first and layer k's roughness is interface k|k+1.
  Beam from the ambient: slabs are our layers L-1 … 0 and the slab of layer k takes layer k's
  roughness. Beam from the substrate: slabs are layers 0 … L-1 and the slab of layer k takes
  layer k-1's roughness (the same mapping as ``physics.film.flip_stack``).
- The fronting's absorption is ignored by refnx's kernel (reflect/_reflect.py ``abeles``:
  ``sld[1:] += ... layers[1:, 2]``; layer 0's iSLD is never read), as by ours (physics/kernel.py).
- Resolution: ``x_err`` (the dataset's 4th column) is the Gaussian FWHM in Å⁻¹ per point
  (reflect/reflect_model.py ``_smeared_kernel_pointwise``: "Each dqval is the FWHM", and
  ``va = qvals - _INTLIMIT * dqvals / _FWHM``); the model's own ``dq`` is a FWHM in % of Q and is
  only used without x_err. We always pass x_err (config dq fraction × Q when a curve has no
  dQ column), so every curve uses the same pointwise quadrature; dq = 0 everywhere → no x_err
  and the model's dq = 0, i.e. no smearing.
- Ties and mixes are Parameter constraints (analysis/parameter.py ``Parameter.constraint``:
  an expression of other Parameters; a constrained Parameter never varies, and
  ``Objective.varying_parameters`` lists the varying Parameters it depends on instead).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from refnx.analysis import GlobalObjective, Objective, Parameter
from refnx.dataset import ReflectDataset
from refnx.reflect import SLD, ReflectModel, Slab, Structure

from reflect_core.analysis.fit.config import FitConfig, Scalar
from reflect_core.analysis.fit.datasets import Prepared
from reflect_core.physics.film import LAYER_FIELDS, Film, Layer

QUAD_ORDER = 17  # refnx's default Gauss–Legendre order for pointwise smearing


class GuardedModel(ReflectModel):
    """A ReflectModel that calls ``guard()`` before each evaluation (stop requests are
    honoured inside any optimiser, also those without a callback)."""

    guard = None

    def model(self, x, p=None, x_err=None):
        if self.guard is not None:
            self.guard()
        return super().model(x, p=p, x_err=x_err)


class FitObjective(GlobalObjective):
    """A GlobalObjective whose set of varying Parameters is fixed once built (a fit never changes
    it). refnx recomputes the set on every call by flattening every Parameter of every model
    (≈ 0.3 ms, twice per log-posterior, against ≈ 3 ms for the reflectivity itself); the
    log-prior is the same sum of the varying Parameters' bound priors, each counted once."""

    def __init__(self, objectives):
        super().__init__(objectives)
        self._varying = super().varying_parameters()

    def varying_parameters(self):
        return self._varying

    def logp(self, pvals=None):
        self.setp(pvals)
        total = float(sum(p.logp() for p in self._varying))
        return total if np.isfinite(total) else -np.inf


@dataclass
class FreeParameter:
    name: str
    i: int | None
    par: str
    contrast: int | None
    parameter: Parameter
    initial: float
    lo: float
    hi: float


def _scalar_parameter(scalar: Scalar, name: str) -> Parameter:
    p = Parameter(scalar.value, name=name)
    if scalar.varies:
        p.setp(vary=True, bounds=(scalar.lo, scalar.hi))
    return p


class FitModel:
    """The refnx objects of one fit, and the way back to Films."""

    def __init__(self, config: FitConfig, data: list[Prepared]):
        self.config, self.data = config, data
        film = config.film
        self.layers = [{par: Parameter(getattr(layer, par), name=f"{config.layer_name(i)} {par}")
                        for par in LAYER_FIELDS} for i, layer in enumerate(film.layers)]
        for b in config.bounds:
            self.layers[b.i][b.par].setp(vary=True, bounds=(b.lo, b.hi))
        self.phis, self.solvent = {}, {}  # solvent: layer → (φ, a) of a mix with the ambient SLD as "b"
        for m in config.mixes:
            phi = self.phis[m.i] = _scalar_parameter(m.phi, f"{config.layer_name(m.i)} phi")
            if m.b is None:  # its SLD depends on the contrast: each contrast's structure gets its own (below)
                self.solvent[m.i] = (phi, m.a)
            else:
                self.layers[m.i]["sld"].constraint = phi * m.a + (1 - phi) * m.b
        for t in config.ties:
            self.layers[t.i][t.par].constraint = self.layers[t.same_i][t.same_par]
        multi = len(config.contrasts) > 1
        self.scales, self.backgrounds, self.ambients, self.models = [], [], [], []
        ambient = self.layers[-1]["sld"]
        shared_ambient = all(c.ambient_sld == film.layers[-1].sld for c in config.contrasts)
        objectives = []
        for contrast, prepared in zip(config.contrasts, data):
            prefix = f"{contrast.name} " if multi else ""
            self.scales.append(_scalar_parameter(contrast.scale, f"{prefix}scale"))
            self.backgrounds.append(_scalar_parameter(contrast.background, f"{prefix}background"))
            self.ambients.append(ambient if shared_ambient else Parameter(contrast.ambient_sld,
                                                                           name=f"{prefix}ambient sld"))
            model = GuardedModel(self._structure(self.ambients[-1]), scale=self.scales[-1], bkg=self.backgrounds[-1],
                                 dq=0.0, dq_type="pointwise", quad_order=QUAD_ORDER, name=contrast.name)
            self.models.append(model)
            used = prepared.used
            columns = (prepared.q[used], prepared.r[used], prepared.dr[used])
            if prepared.dq is not None:
                columns += (prepared.dq[used],)
            objectives.append(Objective(model, ReflectDataset(columns), use_weights=True, name=contrast.name))
        self.objective = FitObjective(objectives)
        self.free = self._free_parameters()

    def _structure(self, ambient_sld: Parameter) -> Structure:
        film, n = self.config.film, len(self.config.film.layers)
        zero = Parameter(0.0, name="fronting roughness (unused)")
        order = range(n - 1, -1, -1) if film.beam_from == "ambient" else range(n)
        slabs = []
        for position, i in enumerate(order):
            p = self.layers[i]
            real = ambient_sld if i == n - 1 else p["sld"]
            if i in self.solvent:
                phi, a = self.solvent[i]
                real = Parameter(float(phi.value * a + (1 - phi.value) * ambient_sld.value), name=f"{p['sld'].name}")
                real.constraint = phi * a + (1 - phi) * ambient_sld
            sld = SLD([real, p["isld"]], name=film.layers[i].name)
            if position == 0:
                rough = zero
            else:
                rough = p["roughness"] if film.beam_from == "ambient" else self.layers[i - 1]["roughness"]
            slabs.append(Slab(p["thickness"], sld, rough, name=film.layers[i].name))
        return Structure(slabs)

    def _free_parameters(self) -> list[FreeParameter]:
        described = {}
        for i, params in enumerate(self.layers):
            for par, p in params.items():
                described[id(p)] = (p.name, i, par, None)
        for i, p in self.phis.items():
            described[id(p)] = (p.name, i, "phi", None)
        for k, (s, b) in enumerate(zip(self.scales, self.backgrounds)):
            described[id(s)] = (s.name, None, "scale", k)
            described[id(b)] = (b.name, None, "background", k)
        free = []
        for p in self.objective.varying_parameters():
            name, i, par, contrast = described[id(p)]
            lo, hi = p.bounds.lb, p.bounds.ub
            free.append(FreeParameter(name, i, par, contrast, p, float(p.value), float(lo), float(hi)))
        return free

    # values ----------------------------------------------------------------------------------
    @property
    def x(self) -> np.ndarray:
        return np.array([f.parameter.value for f in self.free], dtype=float)

    def set_x(self, x) -> None:
        self.objective.setp(np.asarray(x, dtype=float))

    @property
    def lower(self) -> np.ndarray:
        return np.array([f.lo for f in self.free])

    @property
    def upper(self) -> np.ndarray:
        return np.array([f.hi for f in self.free])

    def set_guard(self, guard) -> None:
        for model in self.models:
            model.guard = guard

    def stack(self, contrast: int = 0) -> np.ndarray:
        """(L, 4) [sld, isld, thickness, roughness], substrate first, at the current values."""
        rows = [[p[par].value for par in LAYER_FIELDS] for p in self.layers]
        rows[-1][0] = self.ambients[contrast].value
        for i, (phi, a) in self.solvent.items():
            rows[i][0] = phi.value * a + (1 - phi.value) * self.ambients[contrast].value
        return np.array(rows, dtype=float)

    def film(self, contrast: int = 0) -> Film:
        base = self.config.film
        layers = tuple(Layer(layer.name, *(float(v) for v in row))
                       for layer, row in zip(base.layers, self.stack(contrast)))
        return Film(layers, beam_from=base.beam_from, name=base.name)

    def scale(self, contrast: int) -> float:
        return float(self.scales[contrast].value)

    def background(self, contrast: int) -> float:
        return float(self.backgrounds[contrast].value)

    def r_model(self, contrast: int) -> np.ndarray:
        """refnx's smeared R of the current values at every Q of the curve (also dR ≤ 0 points)."""
        prepared = self.data[contrast]
        return np.asarray(self.models[contrast].model(prepared.q, x_err=prepared.dq), dtype=float)

    def residuals(self, x=None) -> np.ndarray:
        return np.asarray(self.objective.residuals(x), dtype=float)

    def chi2(self, x=None) -> float:
        res = self.residuals(x)
        return float(np.dot(res, res))
