"""Start worker processes as a 2-process run's DataLoader would, while native threads enter Python.

Each native thread (made with ``pthread_create`` through ctypes) calls a ctypes callback, so Python
adds a thread state for it: the moment at which, before CPython 3.11.10, a fork in another thread
left the child waiting for ever (gh-112275). Prints ``started N hung M``. Run by test_runtime.py.

Usage: python tests/fork_churn.py STARTS
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import sys

from mrirecon.workers import loader_workers

_LIBC = ctypes.CDLL(None)
_BODY_TYPE = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p)
_LIBC.pthread_create.argtypes = [ctypes.POINTER(ctypes.c_ulong), ctypes.c_void_p, _BODY_TYPE, ctypes.c_void_p]
_LIBC.pthread_join.argtypes = [ctypes.c_ulong, ctypes.c_void_p]


@_BODY_TYPE
def _enter_python(argument: int | None) -> None:  # (pthread_create passes the argument)
    return None


def _native_threads(count: int) -> list[int]:
    """Start ``count`` native threads that enter Python once each; their ids."""
    threads = []
    for _ in range(count):
        thread = ctypes.c_ulong()
        if _LIBC.pthread_create(ctypes.byref(thread), None, _enter_python, None) == 0:
            threads.append(thread.value)
    return threads


def main(starts: int) -> None:
    context = loader_workers(2, 1).get("multiprocessing_context") or multiprocessing.get_context("fork")
    hung = 0
    for _ in range(starts):
        threads = _native_threads(20)
        process = context.Process(target=os.getpid)
        process.start()
        process.join(20.0)  # a start takes well under a second; a hung one never ends
        if process.is_alive():
            hung += 1
            process.kill()
            process.join()
        for thread in threads:  # (none may still enter Python when this interpreter exits)
            _LIBC.pthread_join(thread, None)
    print(f"{context.get_start_method()} started {starts} hung {hung}", flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]))
