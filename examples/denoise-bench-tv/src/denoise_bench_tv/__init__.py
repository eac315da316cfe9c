"""Total-variation denoising as a denoise-bench method plugin.

A per-image method (no training): Chambolle's projection algorithm for the ROF model through
``skimage.restoration.denoise_tv_chambolle``, with a fixed regularisation weight. It is blind: it
does not ask for the noise level, so it competes with the self-supervised methods on equal terms.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from skimage.restoration import denoise_tv_chambolle

from denoise_bench import hookimpl
from denoise_bench.method import Method, NoiseInfo
from denoise_bench.supervision import Supervision


class TotalVariation(Method):
    name = "tv"
    description = "total-variation denoising (ROF model, Chambolle's algorithm), fixed weight"
    citation = "Chambolle, An Algorithm for Total Variation Minimization and Applications, JMIV 2004"
    supervision = Supervision.NONE  # per-image: sees only the noisy test image
    trainable = False
    options = {"weight": 0.1}  # --method-option tv:weight=0.15

    def denoise(self, noisy: torch.Tensor, noise: NoiseInfo | None = None) -> torch.Tensor:
        # (1, C, H, W) tensor -> (H, W, C) float64 array, denoised per image with channels joint.
        image = noisy[0].permute(1, 2, 0).double().cpu().numpy()
        estimate = denoise_tv_chambolle(image, weight=self.opts["weight"], channel_axis=-1)
        return torch.from_numpy(estimate).permute(2, 0, 1).unsqueeze(0).to(noisy)


@hookimpl
def register_methods(register: Callable[[type[Method]], None]) -> None:
    register(TotalVariation)
