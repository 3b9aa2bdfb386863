"""The prepared COCO sample: made once into the kept folder, found there by every later machine.

Offline: the "download" is a fake COCO folder of small JPEGs, and the sample
sizes are shrunk so the same code draws 30 of 40 photos, split 24 / 6.
"""
from __future__ import annotations

import json
import tarfile

import numpy as np
import pytest
from PIL import Image

from colorlib.data import sources


@pytest.fixture()
def fake_coco(tmp_path, monkeypatch):
    """A fake COCO sample (40 JPEGs) behind the download function, which counts its calls."""
    folder = tmp_path / "fastai" / "coco_sample" / "train_sample"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(40):
        Image.fromarray(rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)).save(
            folder / f"{i:012d}.jpg", quality=90)
    calls = []

    def fetch():
        calls.append(1)
        return folder

    monkeypatch.setattr(sources, "_fetch_coco_sample", fetch)
    monkeypatch.setattr(sources, "COCO_SAMPLE_SIZE", 30)
    monkeypatch.setattr(sources, "COCO_TRAIN_SIZE", 24)
    return folder, calls


def offline(*_):
    raise AssertionError("downloaded although a prepared copy was there")


def test_without_a_cache_it_is_the_tutorials_draw(fake_coco):
    folder, calls = fake_coco
    train, val = sources.coco_sample_paths(123, cache=())
    assert (len(train), len(val), len(calls)) == (24, 6, 1)
    paths = np.array(sorted(str(p) for p in folder.glob("*.jpg")))
    rng = np.random.RandomState(123)  # the tutorial's own lines
    subset = rng.choice(paths, 30, replace=False)
    order = rng.permutation(30)
    assert [str(p) for p in train] == list(subset[order[:24]])
    assert [str(p) for p in val] == list(subset[order[24:]])


def test_prepared_once_then_found_on_a_new_machine(fake_coco, tmp_path, monkeypatch):
    folder, calls = fake_coco
    drive = tmp_path / "drive" / "data"
    logs = []
    train, val = sources.coco_sample_paths(123, cache=[drive], local=tmp_path / "vm1", log=logs.append)
    archive = drive / "coco_sample_seed123.tar"
    assert archive.is_file() and len(calls) == 1
    assert "later runs copy that file" in logs[-1]
    assert not list(drive.glob(".*"))  # no partial file left
    # A new machine: nothing local, no network; the prepared copy is all there is.
    monkeypatch.setattr(sources, "_fetch_coco_sample", offline)
    logs.clear()
    train2, val2 = sources.coco_sample_paths(123, cache=[drive], local=tmp_path / "vm2",
                                          log=logs.append)
    assert [p.name for p in train2] == [p.name for p in train]
    assert [p.name for p in val2] == [p.name for p in val]
    assert all(p.parent == tmp_path / "vm2" for p in train2 + val2)
    assert all((tmp_path / "vm2" / p.name).read_bytes() == p.read_bytes() for p in train + val)
    assert "no download" in logs[-1]
    # Same machine again (a re-run cell): nothing is unpacked twice.
    stamp = (tmp_path / "vm2" / train2[0].name).stat().st_mtime_ns
    sources.coco_sample_paths(123, cache=[drive], local=tmp_path / "vm2", log=logs.append)
    assert (tmp_path / "vm2" / train2[0].name).stat().st_mtime_ns == stamp


def test_the_environment_names_the_cache_and_later_folders_are_only_read(
        fake_coco, tmp_path, monkeypatch):
    folder, calls = fake_coco
    attached = tmp_path / "input" / "data"
    sources.coco_sample_paths(123, cache=[attached], local=tmp_path / "vm1", log=lambda m: None)
    attached.chmod(0o555)
    monkeypatch.setattr(sources, "_fetch_coco_sample", offline)
    working = tmp_path / "working" / "data"
    monkeypatch.setenv("COLORLIB_DATA_CACHE", f"{working}:{attached}")
    train, _ = sources.coco_sample_paths(123, local=tmp_path / "vm2", log=lambda m: None)
    assert len(train) == 24 and not working.exists()  # found in the second; nothing written
    cfg = sources.DataConfig(source="coco")  # cache=None: the environment decides
    assert len(sources.resolve_source(cfg)[0]) == 24
    attached.chmod(0o755)  # so the temporary folder can be removed


def test_each_seed_keeps_its_own_prepared_copy(fake_coco, tmp_path):
    folder, calls = fake_coco
    cache = [tmp_path / "data"]
    a, _ = sources.coco_sample_paths(123, cache=cache, local=tmp_path / "a", log=lambda m: None)
    b, _ = sources.coco_sample_paths(7, cache=cache, local=tmp_path / "b", log=lambda m: None)
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == \
        ["coco_sample_seed123.tar", "coco_sample_seed7.tar"]
    assert [p.name for p in a] != [p.name for p in b]


@pytest.mark.parametrize("damage", ["truncated", "not a tar", "no manifest"])
def test_a_damaged_prepared_copy_is_named_and_kept(fake_coco, tmp_path, monkeypatch, damage):
    folder, calls = fake_coco
    cache = tmp_path / "data"
    sources.coco_sample_paths(123, cache=[cache], local=tmp_path / "vm1", log=lambda m: None)
    archive = cache / "coco_sample_seed123.tar"
    if damage == "truncated":
        archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    elif damage == "not a tar":
        archive.write_bytes(b"<html>quota exceeded</html>")
    else:
        with tarfile.open(archive, "w") as tar:
            tar.add(next(folder.glob("*.jpg")), arcname="photo.jpg")
    before = archive.read_bytes()
    monkeypatch.setattr(sources, "_fetch_coco_sample", offline)
    with pytest.raises(sources.DataCacheError, match="coco_sample_seed123.tar: not a usable") as err:
        sources.coco_sample_paths(123, cache=[cache], local=tmp_path / "vm2", log=lambda m: None)
    assert "delete it" in str(err.value) and "\n" not in str(err.value)
    assert archive.read_bytes() == before  # the user's file is never deleted or rewritten
    assert not (tmp_path / "vm2" / "colorlib-coco-manifest.json").exists()


def test_an_unpack_cut_short_is_redone(fake_coco, tmp_path, monkeypatch):
    folder, calls = fake_coco
    cache = [tmp_path / "data"]
    train, _ = sources.coco_sample_paths(123, cache=cache, local=tmp_path / "vm", log=lambda m: None)
    train, _ = sources.coco_sample_paths(123, cache=cache, local=tmp_path / "vm", log=lambda m: None)
    victim = tmp_path / "vm" / train[3].name
    victim.write_bytes(victim.read_bytes()[:100])  # as if the machine stopped mid-copy
    monkeypatch.setattr(sources, "_fetch_coco_sample", offline)
    train, _ = sources.coco_sample_paths(123, cache=cache, local=tmp_path / "vm", log=lambda m: None)
    assert victim.read_bytes() == (folder / victim.name).read_bytes()


def test_an_unwritable_cache_warns_and_trains_on(fake_coco, tmp_path):
    folder, calls = fake_coco
    blocker = tmp_path / "data"
    blocker.write_text("a file where the cache folder should be")
    with pytest.warns(UserWarning, match="could not keep a prepared copy"):
        train, val = sources.coco_sample_paths(123, cache=[blocker], log=lambda m: None)
    assert len(train) == 24 and blocker.read_text().startswith("a file")


def test_an_incomplete_download_is_named(fake_coco, monkeypatch):
    folder, calls = fake_coco
    monkeypatch.setattr(sources, "COCO_SAMPLE_SIZE", 50)
    with pytest.raises(ValueError, match="train_sample: 40 photos.*incomplete"):
        sources.coco_sample_paths(123, cache=())


def test_the_manifest_records_the_split(fake_coco, tmp_path):
    folder, calls = fake_coco
    train, val = sources.coco_sample_paths(123, cache=[tmp_path], log=lambda m: None)
    with tarfile.open(tmp_path / "coco_sample_seed123.tar") as tar:
        first = tar.next()
        manifest = json.loads(tar.extractfile(first).read())
        names = tar.getnames()
    assert first.name == "colorlib-coco-manifest.json"
    assert manifest["train"] == [p.name for p in train] and manifest["val"] == [p.name for p in val]
    assert len(names) == 1 + 30  # the manifest and only the photos the series uses
