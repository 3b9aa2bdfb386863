"""Every colorized file says it was colorized automatically, by which colorlib and checkpoint."""
import pytest
from PIL import Image

from colorlib import __version__
from colorlib.cli import main
from colorlib.inference.colorizer import Colorizer
from colorlib.models.networks import ModelConfig
from colorlib.training.config import TrainConfig
from colorlib.training.loop import Trainer

EXIF_IMAGE_DESCRIPTION, EXIF_SOFTWARE = 0x010E, 0x0131


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("prov") / "my_model.pt"
    Trainer.build(ModelConfig(arch="pix2pix_unet", size=32, num_filters=8),
                  TrainConfig(stage="baseline"), device="cpu", weights=None).save(path)
    return path


def read_note(path) -> tuple[str, str]:
    """(description, software) from a PNG text chunk or JPEG EXIF."""
    with Image.open(path) as img:
        if img.format == "PNG":
            return img.text.get("Description", ""), img.text.get("Software", "")
        exif = img.getexif()
        return exif.get(EXIF_IMAGE_DESCRIPTION, ""), exif.get(EXIF_SOFTWARE, "")


@pytest.mark.parametrize("fmt", ["png", "jpg"])
def test_colorize_writes_provenance_into_metadata(checkpoint, tiny_root, tmp_path, fmt, capsys):
    src = sorted((tiny_root / "val").glob("*.png"))[0]
    out = tmp_path / "out"
    assert main(["colorize", str(src), "--checkpoint", str(checkpoint), "--out", str(out),
                 "--format", fmt]) == 0
    written = out / f"{src.stem}.{fmt}"
    description, software = read_note(written)
    assert "Colorized automatically" in description
    assert f"colorlib {__version__}" in description
    assert "my_model.pt" in description  # the checkpoint's name
    assert software == "colorlib (colorized)"  # how a later scan knows it is not a photo
    assert description == Colorizer.load(checkpoint).provenance


def test_an_ordinary_save_carries_no_note(tmp_path):
    import numpy as np

    from colorlib.photos.image_files import save_rgb

    path = save_rgb(np.zeros((4, 4, 3), np.uint8), tmp_path / "plain.png")
    assert read_note(path) == ("", "")
