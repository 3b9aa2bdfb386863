"""Test stand-in for ``google.colab.drive``: MyDrive is a folder named by $FAKE_COLAB_DRIVE."""
import os
from pathlib import Path

mounted = []  # mount points, in call order (for tests)


def mount(mountpoint, force_remount=False, timeout_ms=120000, readonly=False):
    if os.environ.get("FAKE_COLAB_REFUSE"):
        raise ValueError("mount failed")  # what Colab raises when access is not granted
    drive = Path(os.environ["FAKE_COLAB_DRIVE"])
    drive.mkdir(parents=True, exist_ok=True)
    point = Path(mountpoint)
    point.mkdir(parents=True, exist_ok=True)
    link = point / "MyDrive"
    if not link.exists():
        link.symlink_to(drive, target_is_directory=True)
    mounted.append(str(point))
    print(f"Mounted at {mountpoint}")
