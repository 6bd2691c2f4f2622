"""Open3D's offscreen renderer without its chatter on a successful run.

On a headless machine Open3D and GLFW print "XDG_RUNTIME_DIR is invalid", "GLFW Error: Failed
to detect any supported platform" and "EGL offscreen" lines from C code, straight to the
process's stdout and stderr. :func:`quiet_renderer` gives the renderer a private runtime
folder, lowers Open3D's verbosity to errors, and sends file descriptors 1 and 2 to a temporary
file for the duration; what was written there is printed back only when the block fails.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile


@contextlib.contextmanager
def quiet_renderer():
    """Run the block with Open3D's and the C libraries' output held back (shown again on error)."""
    import open3d as o3d

    previous_runtime = os.environ.get("XDG_RUNTIME_DIR")
    with tempfile.TemporaryDirectory(prefix="pcseg-runtime-") as runtime, tempfile.TemporaryFile() as held:
        os.chmod(runtime, 0o700)
        usable = previous_runtime and os.path.isdir(previous_runtime)
        os.environ["XDG_RUNTIME_DIR"] = previous_runtime if usable else runtime
        level = o3d.utility.get_verbosity_level()
        o3d.utility.set_verbosity_level(o3d.utility.VerbosityLevel.Error)
        sys.stdout.flush()
        sys.stderr.flush()
        saved = [os.dup(1), os.dup(2)]
        os.dup2(held.fileno(), 1)
        os.dup2(held.fileno(), 2)
        failed = True
        try:
            yield
            failed = False
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            o3d.utility.set_verbosity_level(level)
            if previous_runtime is None:
                os.environ.pop("XDG_RUNTIME_DIR", None)
            else:
                os.environ["XDG_RUNTIME_DIR"] = previous_runtime
            if failed:
                held.seek(0)
                sys.stderr.write(held.read().decode(errors="replace"))
