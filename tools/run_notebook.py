"""Execute a notebook top to bottom in a fresh kernel, with per-cell timings.

This is how the committed figures are regenerated: a notebook run in its
full setting, with ``COLORLIB_*`` variables pointing at real checkpoints and
photos, saves its figures into ``figures/`` (see ``figures/README.md``).
It needs only ``jupyter_client`` and ``ipykernel`` (already installed with
the dev extras), and never writes the notebook back: committed notebooks
stay stripped. ``--output`` saves an executed copy elsewhere, for reading.

    COLORLIB_DATA=... python tools/run_notebook.py notebooks/04_resnet_unet_pretraining.ipynb

Exit status 0 if every cell ran, 1 at the first cell that raised (its
traceback is printed), 2 for a missing or unreadable notebook.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import nbformat


def _collect(kc, msg_id: str, timeout: float) -> tuple[list, str | None]:
    """Outputs of one execution request, and the error traceback if it raised."""
    outputs, error = [], None
    while True:
        msg = kc.get_iopub_msg(timeout=timeout)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        kind, content = msg["msg_type"], msg["content"]
        if kind == "status" and content["execution_state"] == "idle":
            return outputs, error
        if kind == "stream":
            outputs.append(nbformat.v4.new_output("stream", name=content["name"], text=content["text"]))
        elif kind in ("display_data", "execute_result"):
            outputs.append(nbformat.v4.new_output("display_data", data=content["data"],
                                                  metadata=content.get("metadata", {})))
        elif kind == "error":
            outputs.append(nbformat.v4.new_output("error", ename=content["ename"],
                                                  evalue=content["evalue"],
                                                  traceback=content["traceback"]))
            error = "\n".join(content["traceback"])


def run(path: Path, output: Path | None = None, timeout: float = 1800.0, log=print) -> bool:
    """Run every code cell of ``path`` in order; True if none raised."""
    ok, nb = execute(path, timeout, log)
    if output is not None:
        nbformat.write(nb, output)
    return ok


def execute(path: Path, timeout: float = 1800.0, log=print, cwd: Path | None = None,
            env: dict | None = None) -> tuple[bool, nbformat.NotebookNode]:
    """Run every code cell of ``path`` in a new kernel; (True if none raised, the executed copy).

    ``cwd`` (default: the notebook's folder) and ``env`` (default: this
    process's environment) are the kernel's, so a test can give each run a
    machine of its own (``tests/test_fresh_machines.py``).
    """
    from jupyter_client.manager import start_new_kernel

    nb = nbformat.read(path, as_version=4)
    kernel = {"cwd": str(cwd or path.resolve().parent)}
    if env is not None:
        kernel["env"] = dict(env)
    km, kc = start_new_kernel(kernel_name="python3", **kernel)
    start, ok = time.perf_counter(), True
    try:
        for i, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            t0 = time.perf_counter()
            cell.outputs, error = _collect(kc, kc.execute(cell.source), timeout)
            first = (cell.source.strip().splitlines() or [""])[0][:60]
            log(f"cell {i:3d}  {time.perf_counter() - t0:7.1f} s  {first}")
            if error is not None:
                log(error)
                ok = False
                break
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    log(f"{path.name}: {'ok' if ok else 'FAILED'} in {time.perf_counter() - start:.1f} s")
    return ok, nb


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebook", type=Path)
    parser.add_argument("--output", type=Path, help="also save the executed notebook here")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per cell")
    args = parser.parse_args(argv)
    if not args.notebook.is_file():
        print(f"run_notebook: error: {args.notebook}: no such notebook", file=sys.stderr)
        return 2
    if args.output is not None and args.output.resolve() == args.notebook.resolve():
        print("run_notebook: error: --output must not overwrite the committed notebook",
              file=sys.stderr)
        return 2
    try:
        return 0 if run(args.notebook, args.output, args.timeout) else 1
    except nbformat.reader.NotJSONError as err:
        print(f"run_notebook: error: {args.notebook}: not a notebook ({err})", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
