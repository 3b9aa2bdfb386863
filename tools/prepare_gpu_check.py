"""Make the git-ignored files the GPU check carries to a GPU machine.

    python tools/prepare_gpu_check.py [--photos ../shared/data/photos] [--train 1024] [--val 64]

writes

* ``.photos128/train`` and ``.photos128/val``: photos re-encoded at 128 x 128
  (centre square, JPEG quality 92), an even spread over the sorted source
  folders, for the brief training of ``benchmarks/gpu_check.py``;
* ``.gpu_check/shared/``: what ``benchmarks/run.py`` reads from ``../shared``
  (the seed tutorial it measures against, and 336 training photos with their
  long side at most 640 px), because a GPU machine gets a copy of the
  working tree only.

Both folders are git-ignored: the photos and the seed's code are not part of
the project, they only travel with a GPU run (``run`` tool: ``carry``
``.photos128`` and ``.gpu_check``; together about 30 MB). Existing files are
kept, so running it again is quick.
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


def spread(paths: list[Path], n: int) -> list[Path]:
    """``n`` paths evenly spread over the sorted list (every source represented)."""
    step = max(1, len(paths) // max(1, n))
    return paths[::step][:n]


def photos_in(folder: Path) -> list[Path]:
    """The photos colorlib itself would find there (same formats, hidden files skipped)."""
    from colorlib.photos.image_files import scan_folder

    return scan_folder(folder).images


def reencode(src: Path, dest: Path, square: int | None = None, max_side: int | None = None) -> bool:
    """Write ``src`` as a JPEG at ``dest``; False (and a note) if it cannot be read.

    Read as colorlib reads photos (displayed orientation, embedded colour
    profile converted to sRGB), so the carried copy shows what training sees.
    """
    from PIL import Image, ImageOps

    from colorlib.photos.image_files import ImageReadError, load_rgb

    if dest.exists():
        return True
    try:
        img = Image.fromarray(load_rgb(src, max_side=square or max_side))
    except ImageReadError as err:
        print(f"skipped: {err}", file=sys.stderr)
        return False
    if square is not None:
        img = ImageOps.fit(img, (square, square), Image.Resampling.LANCZOS)
    elif max_side is not None:
        img.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    dest.parent.mkdir(parents=True, exist_ok=True)
    img.save(dest, quality=92)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=Path, default=SHARED / "data" / "photos",
                        help="source photos (with train/ and val/ subfolders)")
    parser.add_argument("--train", type=int, default=1024)
    parser.add_argument("--val", type=int, default=64)
    parser.add_argument("--bench", type=int, default=336, help="photos for benchmarks/run.py")
    parser.add_argument("--out", type=Path, default=ROOT)
    args = parser.parse_args(argv)
    if not (args.photos / "train").is_dir() or not (args.photos / "val").is_dir():
        print(f"prepare_gpu_check: error: {args.photos} has no train/ and val/ folders",
              file=sys.stderr)
        return 2
    made = {}
    for split, n in (("train", args.train), ("val", args.val)):
        dest = args.out / ".photos128" / split
        made[split] = sum(reencode(p, dest / f"{p.stem}.jpg", square=128)
                          for p in spread(photos_in(args.photos / split), n))
    bench = args.out / ".gpu_check" / "shared"
    made["bench"] = sum(reencode(p, bench / "data" / "photos" / "train" / f"{p.stem}.jpg",
                                 max_side=640)
                        for p in spread(photos_in(args.photos / "train"), args.bench))
    seed = SHARED / "reference" / "seed_tutorial.py"
    if seed.is_file():
        (bench / "reference").mkdir(parents=True, exist_ok=True)
        shutil.copy2(seed, bench / "reference" / "seed_tutorial.py")
    else:
        print(f"note: {seed} not found; benchmarks/run.py will have no seed peer", file=sys.stderr)
    size = sum(p.stat().st_size for d in (".photos128", ".gpu_check")
               for p in (args.out / d).rglob("*") if p.is_file())
    print(f"{made['train']} train + {made['val']} val photos in .photos128/, {made['bench']} "
          f"benchmark photos in .gpu_check/shared/ ({size / 2**20:.1f} MB in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
