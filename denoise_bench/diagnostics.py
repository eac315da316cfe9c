"""What a learning-curve point says beyond the scores: whether the estimate collapsed, and what the
residual holds.

* ``output_std``: the estimate's spatial standard deviation (per channel, averaged; images in [0, 1]).
  A network that collapses to a near-constant image (IDDP's failure mode: its loss is smallest there)
  shows it here long before anyone looks at a sample.
* ``residual_ratio``: std(y - F(y)) / std(y - x), the estimated noise's spread over the true noise's
  on the same image. IDDP's Figure 4 argues the estimated noise tends to the true noise: 1 when it does;
  above 1 means image structure went into the residual (over-smoothing); below 1 means noise is left in
  the estimate. Computed from the realised noise, so it needs no noise model's sigma and holds for
  Poisson noise too. The clean image is the test case's, used for scoring only, never for training.
"""

from __future__ import annotations

import torch

DIAGNOSTICS = ("output_std", "residual_ratio")


def estimate_diagnostics(noisy: torch.Tensor, clean_u8: torch.Tensor, estimate: torch.Tensor) -> dict[str, float]:
    """:data:`DIAGNOSTICS` of one (1, C, H, W) estimate of ``noisy`` (same shape), ``clean_u8`` (C, H, W)."""
    estimate = estimate.detach().float().cpu()[0]
    noisy = noisy.detach().float().cpu()[0]
    clean = clean_u8.float().cpu() / 255.0
    spread = estimate.flatten(1).std(dim=1).mean()
    residual = (noisy - estimate).std()
    noise = (noisy - clean).std()
    return {"output_std": float(spread), "residual_ratio": float(residual / noise) if noise > 0 else float("nan")}
