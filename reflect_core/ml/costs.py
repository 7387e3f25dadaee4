"""What a Modal GPU run may cost: one price table (USD per GPU-second) and the estimate shown
before submit. Modal bills running containers per second; CPU and memory are extra and small
next to the GPU for this workload, so they are left out of the estimate.

Prices as of 2026-05-07 (check https://modal.com/pricing before relying on them): T4, L4, L40S,
A100-80GB and H100 as listed on Modal's pricing page and quoted that day in a third-party
comparison; A10, A100 (40 GB), H200 and B200 from Modal's per-second price list as last seen,
not re-checked that day.
"""

from __future__ import annotations

from dataclasses import dataclass

from reflect_core.ml.spec import GPU_TIERS

PRICES_AS_OF = "2026-05-07"
PRICING_URL = "https://modal.com/pricing"
# USD per second of one GPU.
GPU_PRICE_PER_S = {
    "T4": 0.000164,
    "L4": 0.000222,
    "A10": 0.000306,
    "L40S": 0.000542,
    "A100": 0.000583,
    "A100-80GB": 0.000694,
    "H100": 0.001097,
    "H200": 0.001261,
    "B200": 0.001736,
}
# Rough training speed against a T4 for this project's CNNs (memory-bound, small batches): what the
# estimate divides this machine's estimate by is taken from this, not measured.
SPEEDUP_VS_T4 = {"T4": 1.0, "L4": 1.5, "A10": 1.8, "L40S": 3.0, "A100": 3.5, "A100-80GB": 3.8, "H100": 5.5,
                 "H200": 6.0, "B200": 8.0}
WHEN_TO_PICK = {
    "T4": "cheapest; small compact CNNs",
    "L4": "cheap and newer than T4; compact CNNs, moderate datasets",
    "A10": "24 GB; mid-size networks",
    "L40S": "48 GB, fast; the pyreflect CNN at a moderate price",
    "A100": "40 GB; large batches",
    "A100-80GB": "80 GB; the largest datasets in memory",
    "H100": "fastest per run for big networks; costs 7× a T4",
    "H200": "141 GB; only when H100 memory is not enough",
    "B200": "the fastest and dearest; rarely worth it here",
}
TIMEOUT_S = 2 * 3600  # a Modal call ends after this, whatever the tier (a paused run resumes for another)
STARTUP_S = 90.0  # container start and image pull, billed too

assert set(GPU_PRICE_PER_S) == set(GPU_TIERS) == set(SPEEDUP_VS_T4)


@dataclass(frozen=True)
class CostEstimate:
    gpu: str
    seconds: float  # estimated billed time, capped at the timeout
    usd: float
    max_usd: float  # if the run goes on until the timeout
    capped: bool  # the estimate is longer than the timeout: the call would end first

    def describe(self) -> str:
        text = (f"Estimated cost on {self.gpu}: about ${self.usd:,.2f} for ~{self.seconds / 60:,.0f} min "
                f"(${GPU_PRICE_PER_S[self.gpu] * 3600:,.2f}/h; at most ${self.max_usd:,.2f} if it runs to the "
                f"{TIMEOUT_S / 3600:g} h limit). Prices as of {PRICES_AS_OF}, check {PRICING_URL}.")
        if self.capped:
            text += " The estimate is over the time limit: the run would be cut off (pause and resume continues it)."
        return text


def estimate(gpu: str, cpu_seconds_here: float, generation_s: float = 0.0) -> CostEstimate:
    """Cost on ``gpu`` for a job whose training this machine estimates at ``cpu_seconds_here``
    (a T4 is taken as 10× a laptop CPU on these networks) plus ``generation_s`` of data generation
    (CPU-bound: the same time in the container)."""
    if gpu not in GPU_PRICE_PER_S:
        raise ValueError(f"gpu: one of {', '.join(GPU_TIERS)}, got {gpu!r}")
    training = max(cpu_seconds_here, 0.0) / (10.0 * SPEEDUP_VS_T4[gpu])
    seconds = STARTUP_S + max(generation_s, 0.0) + training
    price = GPU_PRICE_PER_S[gpu]
    return CostEstimate(gpu, min(seconds, TIMEOUT_S), price * min(seconds, TIMEOUT_S), price * TIMEOUT_S,
                        seconds > TIMEOUT_S)
