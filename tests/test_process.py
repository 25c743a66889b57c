"""Importing minidl has no side effect on the process; :func:`minidl.tune_process` makes its settings when called."""

import os
import subprocess
import sys

import pytest

# Imports every module of minidl with ctypes' library loader watched: any use of ``mallopt`` is printed.
WATCHED_IMPORT = """
import ctypes, importlib, os, pkgutil
calls = []
class Watched:
    def __init__(self, library): self._library = library
    def __getattr__(self, name):
        if name == "mallopt": calls.append(name)
        return getattr(self._library, name)
real = ctypes.CDLL
ctypes.CDLL = lambda *args, **kwargs: Watched(real(*args, **kwargs))
before = dict(os.environ)
import minidl
for info in pkgutil.walk_packages(minidl.__path__, "minidl."):
    importlib.import_module(info.name)
changed = sorted(set(os.environ.items()) ^ set(before.items()))
print(changed, calls)
{after}
"""


def _run(code: str, **environment) -> str:
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in ("OMP_WAIT_POLICY", "OPENBLAS_THREAD_TIMEOUT") and not name.startswith("MALLOC_")
    }
    env.update(environment)
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    ).stdout.splitlines()


def test_importing_every_module_changes_no_environment_variable_and_no_allocator_setting():
    assert _run(WATCHED_IMPORT.format(after=""))[0] == "[] []"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_tune_process_sets_the_thread_variables_and_the_allocator_when_called():
    after = "t = minidl.tune_process(); print(os.environ['OMP_WAIT_POLICY'], os.environ['OPENBLAS_THREAD_TIMEOUT'], t)"
    lines = _run(WATCHED_IMPORT.format(after=after))
    assert lines[1].startswith(
        "PASSIVE 20 Tuning(threads=('OMP_WAIT_POLICY', 'OPENBLAS_THREAD_TIMEOUT'), "
        "threads_in_effect=False, allocator=True)"
    )


def test_a_setting_of_the_user_wins_and_an_allocator_tuned_by_the_user_is_left_alone():
    code = "import os, minidl; t = minidl.tune_process(); print(os.environ['OMP_WAIT_POLICY'], t)"
    (line,) = _run(code, OMP_WAIT_POLICY="ACTIVE", MALLOC_ARENA_MAX="2")
    assert line == ("ACTIVE Tuning(threads=('OPENBLAS_THREAD_TIMEOUT',), threads_in_effect=True, allocator=False)")
