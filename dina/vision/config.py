"""dNaViT's configuration: one frozen config per component, nested (report Sec. 2.2, 4.1.1).

  preprocess -> sae (SAE encoder + bridge) -> quant projection -> rvq -> semantic decoder
                                                                   \\-> pixel decoder -> refiner

`vision_tiny()` trains on ShapesWorld on a 2-core CPU in minutes; `vision_longcat_next()` has
the release's shapes where published (release §3, §5): Qwen2.5-VL ViT, 8 × 16384 codebooks.
The codebook dim, pixel decoder and refiner sizes are not published: ours are marked below.
"""

from __future__ import annotations

from dataclasses import dataclass

from dina.config_io import ConfigBase, _check
from dina.quantize.rvq import RVQConfig
from dina.vision.encoder import SAEConfig, sae_qwen2_5_vl, sae_tiny
from dina.vision.pixel_decoder import PixelDecoderConfig
from dina.vision.preprocess import PreprocessConfig
from dina.vision.refiner import RefinerConfig


@dataclass(frozen=True, kw_only=True)
class VisionTokenizerConfig(ConfigBase):
    """The whole vision tokenizer and de-tokenizer."""

    preprocess: PreprocessConfig
    sae: SAEConfig
    rvq: RVQConfig
    decoder: PixelDecoderConfig
    refiner: RefinerConfig
    semantic_decoder_dim: int = 256  # hidden width of the MLP that reconstructs SAE features
    quant_proj: str = (
        "mlp"  # f_proj: "mlp" (release quant_conv) or "pca" (ours; `dina.vision.tokenizer.QuantProjection`)
    )
    quant_whiten: float = 0.0  # "pca" only: output i has variance ∝ λ_i^(1 - quant_whiten); 1 = whitened

    def __post_init__(self) -> None:
        p, s, d = self.preprocess, self.sae, self.decoder
        _check((p.patch_size, p.merge) == (s.patch_size, s.merge), "preprocess and SAE disagree on patch/merge")
        _check((d.patch_size, d.merge) == (s.patch_size, s.merge), "pixel decoder and SAE disagree on patch/merge")
        _check(d.code_dim == self.rvq.dim, f"pixel decoder code_dim {d.code_dim} != rvq dim {self.rvq.dim}")
        _check(self.refiner.cond_dim == self.rvq.dim, f"refiner cond_dim {self.refiner.cond_dim} != rvq dim")
        _check(self.refiner.patch_px == p.token_px, f"refiner patch_px must be {p.token_px}")
        _check(self.quant_proj in ("mlp", "pca"), f"quant_proj must be 'mlp' or 'pca', got {self.quant_proj!r}")
        _check(self.quant_proj == "mlp" or self.rvq.dim <= s.out_dim, "a 'pca' quant_proj cannot widen the features")
        _check(0.0 <= self.quant_whiten <= 1.0, f"quant_whiten must be in [0, 1], got {self.quant_whiten}")
        _check(self.quant_proj == "pca" or self.quant_whiten == 0.0, "quant_whiten applies to a 'pca' quant_proj only")

    @property
    def token_px(self) -> int:
        """Pixels per token side: 28 in the release."""
        return self.preprocess.token_px

    @property
    def codebook_sizes(self) -> tuple[int, ...]:
        return self.rvq.codebook_sizes

    @property
    def levels(self) -> int:
        return self.rvq.levels


def vision_tiny() -> VisionTokenizerConfig:
    """~5M parameters in all: SAE 128 × 4, 8 × 1024 codes of dim 128 (residual-weighted EMA, ours),
    decoder 128 × 4 with the linear shortcut (`dina.vision.pixel_decoder`), a small U-Net refiner."""
    return VisionTokenizerConfig(
        preprocess=PreprocessConfig(min_pixels=56 * 56, max_pixels=448 * 448),
        sae=sae_tiny(),
        # Residual-weighted EMA (α = 0.5, `dina.quantize.rvq`): entries move from the flat background
        # to objects and signs. Full recipe, 200 held-out images: GenEval 0.785 against 0.75, judge 0.475 both.
        rvq=RVQConfig(dim=128, codebook_sizes=(1024,) * 8, decay=0.99, dead_threshold=0.5, residual_weight_power=0.5),
        decoder=PixelDecoderConfig(code_dim=128, dim=128, depth=4, heads=4, mlp_dim=352, shortcut=True),
        refiner=RefinerConfig(channels=32, channel_mults=(1, 2), cond_dim=128, steps=8),
        semantic_decoder_dim=256,
        quant_proj="pca",
        quant_whiten=0.5,
    )


def vision_longcat_next() -> VisionTokenizerConfig:
    """Release shapes: Qwen2.5-VL ViT SAE, 8 × 16384 EMA codebooks (decay 0.99), pixel budget 28²·1280.

    Not published, ours: codebook dim 1280 (= ViT width); a 400M-parameter pixel decoder (report
    Sec. 4.1.1) as 24 × 1024; the refiner is our U-Net at 128 channels, not the release's 4B DiT.
    """
    return VisionTokenizerConfig(
        preprocess=PreprocessConfig(min_pixels=56 * 56, max_pixels=28 * 28 * 1280),
        sae=sae_qwen2_5_vl(),
        rvq=RVQConfig(dim=1280, codebook_sizes=(16384,) * 8, decay=0.99),
        decoder=PixelDecoderConfig(code_dim=1280, dim=1024, depth=24, heads=16, mlp_dim=4096),
        refiner=RefinerConfig(channels=128, channel_mults=(1, 2, 2), cond_dim=1280, groups=32, steps=28),
        semantic_decoder_dim=2048,
    )
