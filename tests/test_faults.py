"""Fault injection: fork after kernels, Ctrl-C inside kernels, kills during saves, hostile files.

Every case that could hang or crash the interpreter runs in a child process
with a timeout, so that a regression fails one test instead of freezing or
killing the run. Timing limits have slack for a loaded machine; the measured
figures are printed (``pytest -s``).
"""
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_child(source, timeout=120, env=None, cwd=None):
    """Run ``source`` in a fresh interpreter; return the CompletedProcess (fails on timeout)."""
    full_env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    if env:
        full_env.update(env)
    try:
        return subprocess.run([sys.executable, "-c", textwrap.dedent(source)], capture_output=True,
                              text=True, timeout=timeout, env=full_env, cwd=cwd)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"child timed out after {timeout} s (a hang); stdout:\n{e.stdout}\nstderr:\n{e.stderr}")


def run_script(path, source, timeout=120):
    """Like run_child, from a file (multiprocessing's spawn and forkserver re-import it)."""
    path.write_text(textwrap.dedent(source))
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    try:
        return subprocess.run([sys.executable, str(path)], capture_output=True, text=True,
                              timeout=timeout, env=env)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"child timed out after {timeout} s (a hang); stdout:\n{e.stdout}\nstderr:\n{e.stderr}")


# --------------------------------------------------------------------------- fork

POOL_SCRIPT = """
import multiprocessing as mp, sys, time
import numpy as np
import pyxconv
from pyxconv.functional import conv2d

def task(seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((4, 8, 24, 24)).astype(np.float32)
    w = rng.standard_normal((16, 8, 3, 3)).astype(np.float32)
    return seed, conv2d(x, w, padding=1), pyxconv.get_num_threads()

if __name__ == "__main__":
    method = sys.argv[1] if len(sys.argv) > 1 else "{method}"
    pyxconv.set_num_threads(2)
    # the parent runs multi-threaded kernels first: what used to freeze forked children
    for _ in range(3):
        parent = [task(s)[1] for s in range(4)]
    assert pyxconv.get_num_threads() == 2
    start = time.perf_counter()
    with mp.get_context(method).Pool(2) as pool:
        results = pool.map_async(task, range(4)).get(timeout=30)
    took = time.perf_counter() - start
    for (seed, out, threads), expected in zip(results, parent):
        np.testing.assert_array_equal(out, expected)
    print("threads in workers", sorted({r[2] for r in results}))
    print(f"OK {took:.2f}")
"""


@pytest.mark.parametrize("method", ["fork", "forkserver", "spawn"])
def test_pool_of_workers_after_multithreaded_kernels(tmp_path, method):
    proc = run_script(tmp_path / f"pool_{method}.py", POOL_SCRIPT.replace("{method}", method),
                      timeout=90)
    assert proc.returncode == 0, proc.stderr[-3000:]
    took = float(proc.stdout.split("OK")[1])
    print(f"Pool(2) {method}: 4 conv2d tasks in {took:.2f} s; {proc.stdout.splitlines()[0]}")
    assert took < 30
    if method == "fork":
        assert "threads in workers [1]" in proc.stdout


def test_raw_fork_after_kernels_runs_single_threaded_then_as_told():
    proc = run_child("""
        import os, numpy as np, pyxconv
        from pyxconv.functional import conv2d, max_pool2d, cross_entropy
        pyxconv.set_num_threads(2)
        rng = np.random.default_rng(0)
        x = rng.standard_normal((8, 16, 32, 32)).astype(np.float32)
        w = rng.standard_normal((16, 16, 3, 3)).astype(np.float32)
        ref = conv2d(x, w); pool = max_pool2d(x, 2)
        pid = os.fork()
        if pid == 0:
            ok = (np.array_equal(conv2d(x, w), ref) and np.array_equal(max_pool2d(x, 2), pool)
                  and pyxconv.get_num_threads() == 1 and pyxconv.in_forked_child())
            pyxconv.set_num_threads(1)  # an explicit count ends the fork mode
            ok = ok and not pyxconv.in_forked_child()
            os._exit(0 if ok else 3)
        _, status = os.waitpid(pid, 0)
        print("child", os.waitstatus_to_exitcode(status))
        assert pyxconv.get_num_threads() == 2 and not pyxconv.in_forked_child()
    """, timeout=60)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "child 0" in proc.stdout


def test_fork_while_another_thread_is_inside_a_kernel():
    proc = run_child("""
        import os, threading, time, numpy as np, pyxconv
        from pyxconv.functional import conv2d, conv2d_backward
        pyxconv.set_num_threads(2)
        rng = np.random.default_rng(0)
        x = rng.standard_normal((32, 32, 32, 32)).astype(np.float32)
        w = rng.standard_normal((32, 32, 3, 3)).astype(np.float32)
        small_x, small_w = x[:2].copy(), w.copy()
        ref = conv2d(small_x, small_w)
        stop = threading.Event()
        def busy():
            while not stop.is_set():
                out = conv2d(x, w)
                conv2d_backward(x, w, out)
        t = threading.Thread(target=busy); t.start()
        time.sleep(0.5)
        codes = []
        for _ in range(3):
            pid = os.fork()
            if pid == 0:
                os._exit(0 if np.array_equal(conv2d(small_x, small_w), ref) else 3)
            deadline = time.time() + 30
            while True:
                p, status = os.waitpid(pid, os.WNOHANG)
                if p:
                    codes.append(os.waitstatus_to_exitcode(status)); break
                if time.time() > deadline:
                    os.kill(pid, 9); os.waitpid(pid, 0); codes.append("hang"); break
                time.sleep(0.02)
            time.sleep(0.1)
        stop.set(); t.join()
        print("codes", codes)
    """, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "codes [0, 0, 0]" in proc.stdout, proc.stdout
