"""Child processes that never outlive us (the embedded broker, Apache Kafka nodes).

On Linux a child asks the kernel for ``SIGTERM`` when its parent dies
(``PR_SET_PDEATHSIG``), so even a ``SIGKILL``-ed parent leaves none behind. Each runs in
its own process group, so a Ctrl-C in our terminal reaches us, not it, and we stop it
in order.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping
from typing import IO

_PR_SET_PDEATHSIG = 1


def _load_prctl() -> Callable[..., int] | None:
    """libc's ``prctl``, resolved in the parent: the child must not load libraries."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        prctl: Callable[..., int] = libc.prctl
    except (OSError, AttributeError):
        return None
    return prctl


def _make_preexec(prctl: Callable[..., int] | None) -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the kernel SIGTERM the child when we die.

    The death signal fires when the *thread* that forked the child exits, so start
    the child from the main thread (or a thread that lives as long as the child).
    """
    if prctl is None:
        return None
    parent_pid = os.getpid()

    def _die_with_parent() -> None:
        if prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
            return  # fall back silently: the parent's stop() still cleans up
        # The parent may have died between fork() and prctl(): then no signal comes.
        if os.getppid() != parent_pid:
            os.kill(os.getpid(), signal.SIGTERM)

    return _die_with_parent


def spawn_child(
    command: list[str], output: IO[bytes] | int, env: Mapping[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start ``command`` with no input, stdout and stderr to ``output``, in its own process
    group, as a child the kernel SIGTERMs when we die (``env``: its environment, default
    ours). Raises OSError when it cannot run."""
    return subprocess.Popen(
        command,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=output,
        stderr=subprocess.STDOUT,
        preexec_fn=_make_preexec(_load_prctl()),
        process_group=0,
        close_fds=True,
    )
