"""Bundled photographs, image loading and EfficientViT evaluation preprocessing."""

import re

import numpy as np
import pytest
from PIL import Image

from rftrt.data.images import IMAGENET_MEAN, IMAGENET_STD, Preprocess, center_crop, find_images, load_batch, load_image, resize_shorter_side, sample_image_paths
from rftrt.errors import RftrtError
from rftrt.models import PUBLISHED_RESOLUTIONS

MEAN = np.asarray(IMAGENET_MEAN, dtype=np.float32).reshape(3, 1, 1)
STD = np.asarray(IMAGENET_STD, dtype=np.float32).reshape(3, 1, 1)


def _normalise(pixels_hwc: np.ndarray) -> np.ndarray:
    """ToTensor + Normalize in float32, written out independently of the module."""
    chw = pixels_hwc.transpose(2, 0, 1).astype(np.float32) / np.float32(255)
    return (chw - MEAN) / STD


def _gradient(width: int, height: int) -> Image.Image:
    """An RGB image whose pixels encode their own position, so any misplaced crop shows."""
    x = np.arange(width, dtype=np.uint8)[None, :].repeat(height, 0)
    y = np.arange(height, dtype=np.uint8)[:, None].repeat(width, 1)
    return Image.fromarray(np.stack([x, y, (x // 2 + y // 2)], axis=-1), mode="RGB")


# ---- the bundled photographs ------------------------------------------------------------------


def test_bundled_images_are_small_rgb_squares_with_licences():
    paths = sample_image_paths()
    assert len(paths) >= 6
    assert [p.name for p in paths] == sorted(p.name for p in paths)
    licences = (paths[0].parent / "LICENSES.md").read_text(encoding="utf-8")
    for path in paths:
        with Image.open(path) as image:
            assert image.format == "JPEG"
            assert image.mode == "RGB" and image.size == (256, 256)
            assert "exif" not in image.info and "icc_profile" not in image.info
        assert path.stat().st_size < 40_000
        assert f"`{path.name}`" in licences, f"{path.name} has no entry in LICENSES.md"


@pytest.mark.parametrize("resolution", PUBLISHED_RESOLUTIONS)
def test_sample_batch_shape_dtype_and_range(resolution):
    paths = sample_image_paths()
    batch = load_batch(paths, Preprocess.for_resolution(resolution))
    assert batch.shape == (len(paths), 3, resolution, resolution)
    assert batch.dtype == np.float32 and batch.flags.c_contiguous
    low, high = (0 - MEAN) / STD, (1 - MEAN) / STD
    assert (batch >= low - 1e-6).all() and (batch <= high + 1e-6).all()
    # Real photographs use most of the range in every channel.
    assert (batch.min(axis=(0, 2, 3)) < low.ravel() + 0.5).all()
    assert (batch.max(axis=(0, 2, 3)) > high.ravel() - 0.5).all()


# ---- preprocessing -----------------------------------------------------------------------------


def test_crop_ratio_per_published_resolution():
    assert Preprocess.for_resolution(224) == Preprocess(224, crop_ratio=0.95)
    assert Preprocess.for_resolution(224).resize_size == 236  # ceil(224 / 0.95), not timm's floor (235)
    for resolution in (256, 288):
        assert Preprocess.for_resolution(resolution).crop_ratio == 1.0
        assert Preprocess.for_resolution(resolution).resize_size == resolution


def test_resize_then_crop_follows_torchvision_rules():
    image = _gradient(320, 240)
    # 224 at 0.95: shorter side 240 → 236, longer int(236 * 320 / 240) = 314; crop offsets
    # left round(90 / 2) = 45, top round(12 / 2) = 6.
    expected = image.resize((314, 236), Image.Resampling.BICUBIC).crop((45, 6, 269, 230))
    out = Preprocess.for_resolution(224)(image)
    np.testing.assert_array_equal(out, _normalise(np.asarray(expected)))


def test_resize_keeps_orientation_and_crop_rounds_half_to_even():
    assert resize_shorter_side(_gradient(200, 300), 236).size == (236, 354)
    assert resize_shorter_side(_gradient(301, 200), 100).size == (150, 100)  # int(150.5)
    same = _gradient(256, 300)
    assert resize_shorter_side(same, 256) is same
    # (237 - 224) / 2 = 6.5 rounds to 6 (Python's round, as torchvision), height (227 - 224) / 2 → 2.
    crop = np.asarray(center_crop(_gradient(237, 227), 224))
    assert crop[0, 0, 0] == 6 and crop[0, 0, 1] == 2
    with pytest.raises(RftrtError, match="cannot centre-crop 224x224 from a 200x300 image"):
        center_crop(_gradient(200, 300), 224)


@pytest.mark.parametrize("colour", [(0, 0, 0), (255, 255, 255), (12, 200, 77)])
@pytest.mark.parametrize("resolution", PUBLISHED_RESOLUTIONS)
def test_solid_colour_normalises_exactly(colour, resolution):
    out = Preprocess.for_resolution(resolution)(Image.new("RGB", (333, 301), colour))
    assert out.shape == (3, resolution, resolution) and out.dtype == np.float32
    for channel, value in enumerate(colour):
        expected = (np.float32(value) / np.float32(255) - np.float32(IMAGENET_MEAN[channel])) / np.float32(
            IMAGENET_STD[channel]
        )
        assert (out[channel] == expected).all()
        assert expected == pytest.approx((value / 255 - IMAGENET_MEAN[channel]) / IMAGENET_STD[channel], abs=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"resolution": 0}, "resolution must be a positive integer"),
        ({"resolution": 224, "crop_ratio": 0.0}, r"crop ratio must be in \(0, 1\]"),
        ({"resolution": 224, "crop_ratio": 1.2}, r"crop ratio must be in \(0, 1\]"),
        ({"resolution": 224, "interpolation": "cubic"}, "unknown interpolation 'cubic'; available: .*bicubic"),
    ],
)
def test_preprocess_rejects_bad_options(kwargs, message):
    with pytest.raises(RftrtError, match=message):
        Preprocess(**kwargs)


# ---- loading -----------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["L", "LA", "RGBA", "P", "CMYK", "I;16"])
def test_other_modes_load_as_rgb(tmp_path, mode):
    path = tmp_path / ("photo.jpg" if mode == "CMYK" else "photo.png")
    Image.new(mode, (40, 30)).save(path)
    image = load_image(path)
    assert image.mode == "RGB" and image.size == (40, 30)
    assert Preprocess(16, crop_ratio=1.0)(image).shape == (3, 16, 16)


def test_alpha_is_dropped_not_composited(tmp_path):
    path = tmp_path / "clear.png"
    Image.new("RGBA", (8, 8), (10, 20, 30, 0)).save(path)
    assert load_image(path).getpixel((3, 3)) == (10, 20, 30)


def test_palette_and_greyscale_keep_their_colours(tmp_path):
    palette = Image.new("P", (8, 8))
    palette.putpalette([0, 0, 0, 200, 100, 50] + [0] * 762)
    palette.paste(1, (0, 0, 8, 8))
    palette.save(tmp_path / "palette.png")
    Image.new("L", (8, 8), 77).save(tmp_path / "grey.png")
    assert load_image(tmp_path / "palette.png").getpixel((0, 0)) == (200, 100, 50)
    assert load_image(tmp_path / "grey.png").getpixel((0, 0)) == (77, 77, 77)


def test_unreadable_files_name_the_path(tmp_path):
    garbage = tmp_path / "garbage.jpg"
    garbage.write_bytes(b"this is not an image")
    with pytest.raises(RftrtError, match=rf"^{re.escape(str(garbage))}: not a readable image \(unrecognised format\)$"):
        load_image(garbage)

    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(sample_image_paths()[0].read_bytes()[:2000])
    with pytest.raises(RftrtError, match=rf"^{re.escape(str(truncated))}: not a readable image \(.*truncated.*\)$"):
        load_image(truncated)

    with pytest.raises(RftrtError, match="missing.png: no such image file"):
        load_image(tmp_path / "missing.png")
    with pytest.raises(RftrtError, match="garbage.jpg: not a readable image"):
        load_batch([sample_image_paths()[0], garbage], Preprocess.for_resolution(224))


def test_load_batch_keeps_order_and_needs_paths(tmp_path):
    for name, colour in [("a.png", (255, 0, 0)), ("b.png", (0, 0, 255))]:
        Image.new("RGB", (20, 20), colour).save(tmp_path / name)
    batch = load_batch([tmp_path / "b.png", tmp_path / "a.png"], Preprocess(16, crop_ratio=1.0))
    assert batch.shape == (2, 3, 16, 16)
    assert batch[0, 2].mean() > batch[0, 0].mean() and batch[1, 0].mean() > batch[1, 2].mean()
    with pytest.raises(RftrtError, match="no image paths"):
        load_batch([], Preprocess(16))


# ---- finding -----------------------------------------------------------------------------------


def test_find_images_recursive_sorted_case_insensitive(tmp_path):
    for relative in [
        "b.JPG",
        "a/c.png",
        "a/sub/d.Jpeg",
        "a/e.webp",
        "a-f.bmp",
        "notes.txt",
        "a/sub/readme.md",
        ".hidden.jpg",
        "._resource_fork.jpg",
        ".cache/g.jpg",
    ]:
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")  # find_images looks at names only
    found = find_images(tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in found] == [
        "a/c.png",
        "a/e.webp",
        "a/sub/d.Jpeg",
        "a-f.bmp",
        "b.JPG",
    ]
    assert find_images(tmp_path) == found


def test_find_images_errors(tmp_path):
    with pytest.raises(RftrtError, match="no image files .* among the 0 files looked at"):
        find_images(tmp_path)
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "photo.tiff").write_bytes(b"")
    message = rf"^{re.escape(str(tmp_path))}: no image files .* among the 2 files looked at$"
    with pytest.raises(RftrtError, match=message):
        find_images(tmp_path)
    with pytest.raises(RftrtError, match="nowhere: no such directory"):
        find_images(tmp_path / "nowhere")
    with pytest.raises(RftrtError, match="notes.txt: not a directory"):
        find_images(tmp_path / "notes.txt")


def test_a_folder_of_which_nothing_decodes_is_refused_at_once_and_counts_are_what_it_holds(tmp_path):
    from rftrt.data.images import Preprocess
    from rftrt.data.sources import ImageSource

    broken = tmp_path / "broken"
    broken.mkdir()
    for i in range(3):
        (broken / f"{i}.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(RftrtError, match="no readable images: all 3 image files were skipped"):
        ImageSource.from_folder(broken, Preprocess.for_resolution(64), 512)  # before any calibration work
    good = tmp_path / "good"
    good.mkdir()
    for photo in sample_image_paths()[:5]:
        (good / photo.name).write_bytes(photo.read_bytes())
    source = ImageSource.from_folder(good, Preprocess.for_resolution(64), 512)
    assert source.expected == 5 and source.requested == 512  # the progress bar's total: what the folder has
