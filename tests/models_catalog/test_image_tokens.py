"""Image-token rules, each case with its arithmetic written out."""

from __future__ import annotations

import pytest

from models_catalog.errors import InvalidUsage
from models_catalog.pricing import image_input_tokens, max_image_input_tokens


def tokens(resolve, model_id, w, h, detail="auto"):
    return image_input_tokens(model=resolve(model_id), width=w, height=h, detail=detail)


def test_gpt_4o_1024_square_high_detail(resolve):
    # 1024×1024 fits in 2048×2048; shortest side 1024 > 768 → 768×768;
    # tiles = ceil(768/512) × ceil(768/512) = 2 × 2 = 4; 85 + 170 × 4 = 765
    assert tokens(resolve, "gpt-4o", 1024, 1024, "high") == 765
    assert tokens(resolve, "gpt-4o", 1024, 1024, "auto") == 765  # auto is costed as high


def test_gpt_4o_low_detail_is_flat(resolve):
    assert tokens(resolve, "gpt-4o", 1024, 1024, "low") == 85
    assert tokens(resolve, "gpt-4o", 4000, 3000, "low") == 85


def test_gpt_4o_2048x4096_openai_doc_example(resolve):
    # fit 2048 box: 1024×2048; shortest 1024 → 768: 768×1536; tiles 2 × 3 = 6; 85 + 1020 = 1105
    assert tokens(resolve, "gpt-4o", 2048, 4096, "high") == 1105


def test_gpt_4o_small_image_is_never_enlarged(resolve):
    # 512×512: no resize, one tile: 85 + 170 = 255
    assert tokens(resolve, "gpt-4o", 512, 512, "high") == 255
    # 513×512: ceil(513/512) = 2 tiles across: 85 + 340 = 425
    assert tokens(resolve, "gpt-4o", 513, 512, "high") == 425


def test_gpt_4o_mini_uses_its_own_counts(resolve):
    # same 4 tiles as gpt-4o, but 2833 base + 5667 per tile: 2833 + 4 × 5667 = 25501
    assert tokens(resolve, "gpt-4o-mini", 1024, 1024, "high") == 25501
    assert tokens(resolve, "gpt-4o-mini", 1024, 1024, "low") == 2833


def test_gpt_image_1_edit_input(resolve):
    # gpt-image-1 scales the shortest side to 512: 1024×1024 → 512×512 → 1 tile; 65 + 129 = 194
    assert tokens(resolve, "gpt-image-1", 1024, 1024) == 194
    # the alias from the seed article resolves to the same model and rule
    assert tokens(resolve, "gpt-4o-image", 1024, 1024) == 194


@pytest.mark.parametrize(
    ("w", "h", "expected"),
    [
        (1024, 1024, 1399),  # 1,048,576 / 750 = 1398.1 → 1399
        (1000, 1000, 1334),  # 1,000,000 / 750 = 1333.3 → 1334 (Anthropic's table: ~1334)
        (200, 200, 54),  # 40,000 / 750 = 53.3 → 54 (table: ~54)
        (1092, 1092, 1590),  # 1,192,464 / 750 = 1589.95 → 1590 (table: ~1590, no resize)
        # 4000×3000: long edge → 1568: 1568×1176 (3000·1568//4000); 1,843,968 px > 1,200,000 →
        # w = isqrt(1568·1.2M // 1176) = isqrt(1,600,000) = 1264, h = isqrt(1176·1.2M // 1568)
        # = isqrt(900,000) = 948; 1264 × 948 = 1,198,272 / 750 = 1597.7 → 1598
        (4000, 3000, 1598),
    ],
)
def test_claude_width_times_height_over_750(resolve, w, h, expected):
    assert tokens(resolve, "claude-sonnet-4-5", w, h) == expected
    assert tokens(resolve, "claude-haiku-4-5", w, h) == expected


def test_gemini_tiles(resolve):
    assert tokens(resolve, "gemini-2.5-flash", 384, 384) == 258  # both sides ≤ 384: one image, 258
    assert tokens(resolve, "gemini-2.5-flash", 385, 200) == 258  # ceil(385/768) × ceil(200/768) = 1 tile
    assert tokens(resolve, "gemini-2.5-pro", 1024, 1024) == 1032  # 2 × 2 tiles × 258


def test_qwen_patches(resolve):
    # round(1024/28) = 37 → 37 × 37 = 1369 patches > 1280 → shrink to area 1280·28² = 1,003,520:
    # isqrt(1,003,520) = 1001 → 1001 // 28 = 35 patches a side → 35 × 35 + 2 = 1227
    assert tokens(resolve, "qwen-vl-max", 1024, 1024) == 1227
    # 280×280 = 10 × 10 patches + 2 = 102
    assert tokens(resolve, "qwen-vl-plus", 280, 280) == 102


def test_maximum_per_image_for_holds(resolve):
    # gpt-4o: at most 768 × 2048 after resizing = 2 × 4 tiles: 85 + 170 × 8 = 1445
    assert max_image_input_tokens(resolve("gpt-4o")) == 1445
    assert max_image_input_tokens(resolve("gpt-4o-mini")) == 2833 + 5667 * 8
    assert max_image_input_tokens(resolve("claude-sonnet-4-5")) == 1600  # 1,200,000 / 750
    assert max_image_input_tokens(resolve("gpt-image-1")) == 65 + 129 * 4  # 512 × 2048 → 1 × 4 tiles
    assert max_image_input_tokens(resolve("dall-e-3")) == 0
    for model_id, w, h in [
        ("gpt-4o", 3000, 700),
        ("claude-sonnet-4-5", 8000, 8000),
        ("qwen-vl-max", 5000, 5000),
    ]:
        model = resolve(model_id)
        assert image_input_tokens(model=model, width=w, height=h, detail="high") <= max_image_input_tokens(
            model
        )


def test_bad_input_is_refused(resolve):
    with pytest.raises(InvalidUsage):
        tokens(resolve, "gpt-4o", 0, 100)
    with pytest.raises(InvalidUsage):
        tokens(resolve, "gpt-4o", 100, 100, "ultra")
    with pytest.raises(InvalidUsage):
        tokens(resolve, "dall-e-3", 100, 100)
