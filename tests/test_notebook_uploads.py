"""save_uploads: files from ipywidgets 7/8 FileUpload and Colab's files.upload()."""
import pytest

from colorlib.teaching.notebook import save_uploads


def test_ipywidgets8_value(tmp_path):
    value = ({"name": "a.png", "type": "image/png", "size": 3, "content": memoryview(b"abc")},
             {"name": "b.jpg", "type": "image/jpeg", "size": 2, "content": memoryview(b"xy")})
    saved = save_uploads(value, tmp_path / "up")
    assert [p.name for p in saved] == ["a.png", "b.jpg"]
    assert saved[0].read_bytes() == b"abc" and saved[1].read_bytes() == b"xy"


def test_ipywidgets7_and_colab_values(tmp_path):
    (p7,) = save_uploads({"old.tif": {"metadata": {}, "content": b"123"}}, tmp_path)
    (pc,) = save_uploads({"colab.png": b"456"}, tmp_path)
    assert p7.read_bytes() == b"123" and pc.read_bytes() == b"456"


def test_names_cannot_escape_the_folder(tmp_path):
    (p,) = save_uploads({"../../evil.png": b"x"}, tmp_path / "in")
    assert p == tmp_path / "in" / "evil.png"
    (q,) = save_uploads({"C:\\photos\\win.png": b"y"}, tmp_path / "in")
    assert q == tmp_path / "in" / "win.png"
    with pytest.raises(ValueError, match="unusable file name"):
        save_uploads({"..": b"z"}, tmp_path / "in")
