"""The progress bar of a run: slices done of the total (with tqdm's slices/s and ETA) and volumes
written so far. Updated from the model loop and from the writer thread."""

from __future__ import annotations

import sys
import threading

from tqdm.auto import tqdm

__all__ = ["Progress"]


class Progress:
    """A tqdm bar over slices, with ``volumes k/N`` as its postfix.

    Args:
        slices: Slices to reconstruct.
        volumes: Volumes to write (reconstructed or exported).
        enabled: Show the bar (False: count silently).
        label: Text in front of the bar.
    """

    def __init__(self, slices: int, volumes: int, *, enabled: bool = True, label: str = "reconstructing"):
        self.volumes_total = volumes
        self.volumes_done = 0
        self._lock = threading.Lock()
        self._bar = tqdm(
            total=slices,
            unit="slice",
            desc=label,
            disable=not enabled,
            dynamic_ncols=True,
            smoothing=0.1,
            mininterval=0.1 if sys.stderr.isatty() else 30.0,  # a log file gets a line every 30 s
            leave=True,
        )
        self._bar.set_postfix_str(self._postfix(), refresh=False)

    def _postfix(self) -> str:
        return f"volumes {self.volumes_done}/{self.volumes_total}"

    def slices(self, count: int) -> None:
        """``count`` more slices went through the model (or failed)."""
        with self._lock:
            self._bar.update(count)

    def volume(self) -> None:
        """One more volume was written (or failed)."""
        with self._lock:
            self.volumes_done += 1
            self._bar.set_postfix_str(self._postfix())

    def close(self) -> None:
        """Finish the bar."""
        with self._lock:
            self._bar.close()
