"""Per-stage timing of the dual path for benchmarks, off (and free) by default.

``DualPathModel.forward`` marks the end of each step with ``mark_stage(self.stage_timer, name)``.
With no timer (the default, and whenever the model runs in the node) a mark is one ``is None``
test: no device work, no host synchronisation, nothing for graph capture or compilation to see.
With a :class:`StageTimer` a mark records a CUDA event on the current stream (on the CPU, where
execution is synchronous, the host clock); the events are read only after the forward, by
``durations_ms``, so timing never adds a synchronisation inside the forward and never changes
what it computes.
"""

from __future__ import annotations

import itertools
import time

import torch

DUAL_PATH_STAGES: tuple[str, ...] = (
    'crops',
    'whole_body',
    'body_adapter',
    'hand_crops',
    'hand_expert',
    'fusion',
    'smplx',
)
"""Stages of one forward in order (steps (a) ... (i) of hmr_ros.models.dual_path)."""


class StageTimer:
    """Collects the marks of one forward; read them with ``durations_ms`` afterwards.

    Args:
        device: where the model runs (CUDA: events; else the host clock).
    """

    def __init__(self, device: torch.device) -> None:
        self._cuda = device.type == 'cuda'
        self._marks: list[tuple[str, torch.cuda.Event | float]] = []

    def mark(self, stage: str) -> None:
        """The end of ``stage`` (``'start'`` begins a forward)."""
        if stage == 'start':
            self._marks.clear()
        if self._cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            self._marks.append((stage, event))
        else:
            self._marks.append((stage, time.perf_counter()))

    def durations_ms(self) -> dict[str, float]:
        """Milliseconds per stage of the last forward (waits for its last event on CUDA)."""
        if len(self._marks) < 2:
            return {}
        last = self._marks[-1][1]
        if isinstance(last, torch.cuda.Event):
            last.synchronize()
        durations: dict[str, float] = {}
        for (_, before), (stage, after) in itertools.pairwise(self._marks):
            if isinstance(before, torch.cuda.Event) and isinstance(after, torch.cuda.Event):
                elapsed = before.elapsed_time(after)
            else:
                elapsed = (float(after) - float(before)) * 1e3  # type: ignore[arg-type]
            durations[stage] = durations.get(stage, 0.0) + elapsed
        return durations


def mark_stage(timer: StageTimer | None, stage: str) -> None:
    """Mark the end of a stage when a timer is attached; nothing otherwise."""
    if timer is not None:
        timer.mark(stage)
