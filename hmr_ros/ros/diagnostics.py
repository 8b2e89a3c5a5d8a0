"""Run-time statistics of hmr_node and their ``/diagnostics`` status (docs/ros-interface.md).

:class:`NodeStatistics` counts what happens to images (received, skipped, refused, dropped while
busy, published) and keeps recent latencies; it is thread-safe (the image callback and the
worker both record) and has no ROS dependency, so it is tested on its own. :func:`evaluate`
turns one snapshot into four statuses with levels:

- ``input``: input rate and every reason an image was not used. WARN when an image was refused
  in the last window (bad encoding, empty image, wrong step, missing or invalid camera_info) or
  when the node is active and no image arrived for ``stall_s``. With external detections, an
  image processed without matching boxes, or an invalid detections array, also WARNs.
- ``output``: output rate and pipeline errors. ERROR when images arrive but nothing was
  published for ``stall_s`` (the hri_body_detect pattern), with the most recent reason.
- ``latency``: p50, p95 and max of publish time minus image stamp, milliseconds. WARN when the
  p95 exceeds ``latency_warn_ms``.
- ``model``: backend, device, precision, files. WARN when the weights are generated stand-ins.

Only :func:`diagnostic_array` touches ROS messages (imported there). The diagnostic_updater
package is not used: it is not installable everywhere the node runs (PyPI ROS wheels).
"""

from __future__ import annotations

import dataclasses
import enum
import math
import threading
from collections import deque
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

DEFAULT_WINDOW_S = 5.0
"""Rates, latency percentiles and 'recent' errors cover this many seconds."""


class Level(enum.IntEnum):
    """Diagnostic levels, the values of ``diagnostic_msgs/DiagnosticStatus``."""

    OK = 0
    WARN = 1
    ERROR = 2
    STALE = 3


class Event(str, enum.Enum):
    """Things counted about images (the diagnostic keys)."""

    SKIPPED_STALE = 'skipped stale'
    SKIPPED_RATE = 'skipped by max_rate_hz'
    DECODE_ERROR = 'decode errors'
    MISSING_CAMERA_INFO = 'refused: no camera_info'
    INVALID_CAMERA_INFO = 'refused: invalid camera_info'
    PIPELINE_ERROR = 'pipeline errors'
    PUBLISH_ERROR = 'publish errors'
    NO_DETECTIONS = 'processed without matching detections'
    INVALID_DETECTIONS = 'invalid detections'
    NO_TRANSFORM = 'skipped: no output.frame transform'
    FUTURE_STAMP = 'refused: stamped in the future'


INPUT_PROBLEMS = (
    Event.DECODE_ERROR,
    Event.MISSING_CAMERA_INFO,
    Event.INVALID_CAMERA_INFO,
    Event.NO_DETECTIONS,
    Event.INVALID_DETECTIONS,
    Event.NO_TRANSFORM,
    Event.FUTURE_STAMP,
)
"""Events that mean the input is wrong (WARN on ``input``)."""


class StatisticsSnapshot(NamedTuple):
    """Statistics at one moment.

    Attributes:
        elapsed_s: Time since :meth:`NodeStatistics.reset`.
        received: Images received.
        published: Frames published.
        dropped_busy: Frames replaced in the slot while the worker was busy.
        counts: Count of each :class:`Event`.
        recent: Events seen in the last window, with their latest message.
        input_rate_hz: Images per second over the window.
        output_rate_hz: Published frames per second over the window.
        latency_p50_ms: Median latency over the window, NaN when nothing was published.
        latency_p95_ms: 95th percentile, NaN when nothing was published.
        latency_max_ms: Maximum, NaN when nothing was published.
        since_input_s: Time since the last image, inf when none arrived.
        since_output_s: Time since the last publication, or since the first image when
            nothing was published yet; inf when no image arrived.
    """

    elapsed_s: float
    received: int
    published: int
    dropped_busy: int
    counts: dict[Event, int]
    recent: dict[Event, str]
    input_rate_hz: float
    output_rate_hz: float
    latency_p50_ms: float
    latency_p95_ms: float
    latency_max_ms: float
    since_input_s: float
    since_output_s: float


class NodeStatistics:
    """Thread-safe counters and windows (times from one monotonic clock, seconds)."""

    def __init__(self, window_s: float = DEFAULT_WINDOW_S) -> None:
        if not window_s > 0.0:
            raise ValueError(f'window_s must be > 0, got {window_s}')
        self._window_s = window_s
        self._lock = threading.Lock()
        self.reset(0.0)

    def reset(self, now_s: float) -> None:
        """Start afresh (on activation)."""
        with self._lock:
            self._start_s = now_s
            self._received = 0
            self._published = 0
            self._inputs: deque[float] = deque()
            self._outputs: deque[tuple[float, float]] = deque()
            self._first_input_s: float | None = None
            self._last_input_s: float | None = None
            self._last_output_s: float | None = None
            self._counts = {event: 0 for event in Event}
            self._last_event: dict[Event, tuple[float, str]] = {}

    def record_input(self, now_s: float) -> None:
        """An image arrived (whatever happens to it next)."""
        with self._lock:
            self._received += 1
            self._inputs.append(now_s)
            if self._first_input_s is None:
                self._first_input_s = now_s
            self._last_input_s = now_s
            self._prune(now_s)

    def record_output(self, now_s: float, latency_ms: float) -> None:
        """A frame's results were published ``latency_ms`` after the image stamp."""
        with self._lock:
            self._published += 1
            self._outputs.append((now_s, latency_ms))
            self._last_output_s = now_s
            self._prune(now_s)

    def record_event(self, event: Event, now_s: float, message: str = '') -> None:
        """Count an event; ``message`` (the reason) is shown while the event is recent."""
        with self._lock:
            self._counts[event] += 1
            self._last_event[event] = (now_s, message)

    def count(self, event: Event) -> int:
        """How often ``event`` happened since the last reset."""
        with self._lock:
            return self._counts[event]

    def _prune(self, now_s: float) -> None:
        horizon = now_s - self._window_s
        while self._inputs and self._inputs[0] < horizon:
            self._inputs.popleft()
        while self._outputs and self._outputs[0][0] < horizon:
            self._outputs.popleft()

    def snapshot(self, now_s: float, dropped_busy: int = 0) -> StatisticsSnapshot:
        """Statistics now; ``dropped_busy`` comes from the frame slot's counter."""
        with self._lock:
            self._prune(now_s)
            elapsed_s = max(now_s - self._start_s, 0.0)
            span_s = min(self._window_s, elapsed_s)
            latencies = np.array([latency for _, latency in self._outputs], dtype=np.float64)
            if latencies.size:
                p50, p95 = (float(v) for v in np.percentile(latencies, (50.0, 95.0)))
                worst = float(latencies.max())
            else:
                p50 = p95 = worst = math.nan
            horizon = now_s - self._window_s
            recent = {
                event: message
                for event, (stamp_s, message) in self._last_event.items()
                if stamp_s >= horizon
            }
            since_input = math.inf if self._last_input_s is None else now_s - self._last_input_s
            if self._last_output_s is not None:
                since_output = now_s - self._last_output_s
            elif self._first_input_s is not None:
                since_output = now_s - self._first_input_s
            else:
                since_output = math.inf
            return StatisticsSnapshot(
                elapsed_s=elapsed_s,
                received=self._received,
                published=self._published,
                dropped_busy=dropped_busy,
                counts=dict(self._counts),
                recent=recent,
                input_rate_hz=len(self._inputs) / span_s if span_s > 0.0 else 0.0,
                output_rate_hz=len(self._outputs) / span_s if span_s > 0.0 else 0.0,
                latency_p50_ms=p50,
                latency_p95_ms=p95,
                latency_max_ms=worst,
                since_input_s=since_input,
                since_output_s=since_output,
            )


@dataclasses.dataclass(frozen=True)
class DiagnosticsSettings:
    """Thresholds of the levels (``diagnostics.*``) and facts shown in the statuses.

    Attributes:
        latency_warn_ms: WARN when the p95 latency exceeds it, milliseconds.
        stall_s: ERROR when images arrive but nothing was published for this long, seconds.
        image_topic: Resolved image topic, named in hints.
        camera_info_topic: Resolved camera_info topic, named in hints.
    """

    latency_warn_ms: float = 100.0
    stall_s: float = 2.0
    image_topic: str = 'image'
    camera_info_topic: str = 'camera_info'


class ModelFacts(NamedTuple):
    """What the ``model`` status shows (from ModelDescription)."""

    backend: str
    device: str
    precision: str
    model_version: str
    adapters: str
    files: tuple[str, ...]
    synthetic_weights: bool
    weights_note: str


class StatusReport(NamedTuple):
    """One status of the DiagnosticArray.

    Attributes:
        name: Status name without the node prefix ('input', 'output', 'latency', 'model').
        level: Its level.
        message: One line for humans: the worst problem, or a summary.
        values: Key/value pairs; numbers formatted with their unit in the key.
    """

    name: str
    level: Level
    message: str
    values: tuple[tuple[str, str], ...]


def _ms(value: float) -> str:
    return 'n/a' if math.isnan(value) else f'{value:.1f}'


def evaluate(
    snapshot: StatisticsSnapshot,
    settings: DiagnosticsSettings,
    state: str,
    model: ModelFacts | None,
) -> list[StatusReport]:
    """Levels and messages of the four statuses (see the module docstring).

    Args:
        snapshot: Current statistics.
        settings: Thresholds and topic names.
        state: 'active', 'inactive' (lifecycle) or 'disabled' (``~/enable`` false); levels
            about stalls apply only when 'active'.
        model: Model facts, None before the pipeline is built.
    """
    counts = snapshot.counts
    active = state == 'active'
    input_values = (
        ('state', state),
        ('input rate (Hz)', f'{snapshot.input_rate_hz:.2f}'),
        ('images received', str(snapshot.received)),
        ('dropped while busy', str(snapshot.dropped_busy)),
        ('skipped stale', str(counts[Event.SKIPPED_STALE])),
        ('skipped by max_rate_hz', str(counts[Event.SKIPPED_RATE])),
        ('decode errors', str(counts[Event.DECODE_ERROR])),
        ('missing camera_info', str(counts[Event.MISSING_CAMERA_INFO])),
        ('invalid camera_info', str(counts[Event.INVALID_CAMERA_INFO])),
        ('without matching detections', str(counts[Event.NO_DETECTIONS])),
        ('invalid detections', str(counts[Event.INVALID_DETECTIONS])),
        ('stamped in the future', str(counts[Event.FUTURE_STAMP])),
        ('image topic', settings.image_topic),
        ('camera_info topic', settings.camera_info_topic),
    )
    input_problems = [
        f'{event.value}: {snapshot.recent[event]}'
        for event in INPUT_PROBLEMS
        if event in snapshot.recent
    ]
    if not active:
        input_status = StatusReport('input', Level.OK, f'node {state}', input_values)
    elif input_problems:
        input_status = StatusReport('input', Level.WARN, '; '.join(input_problems), input_values)
    elif snapshot.since_input_s > settings.stall_s and snapshot.elapsed_s > settings.stall_s:
        input_status = StatusReport(
            'input',
            Level.WARN,
            f'no image on {settings.image_topic} for '
            f'{min(snapshot.since_input_s, snapshot.elapsed_s):.1f} s: check the remapping '
            'and that the publisher QoS is compatible (input.qos)',
            input_values,
        )
    else:
        input_status = StatusReport('input', Level.OK, 'receiving images', input_values)

    output_values = (
        ('output rate (Hz)', f'{snapshot.output_rate_hz:.2f}'),
        ('frames published', str(snapshot.published)),
        ('pipeline errors', str(counts[Event.PIPELINE_ERROR])),
        ('publish errors', str(counts[Event.PUBLISH_ERROR])),
    )
    images_arrive = snapshot.since_input_s <= settings.stall_s
    stalled = active and images_arrive and snapshot.since_output_s > settings.stall_s
    if not active:
        output_status = StatusReport('output', Level.OK, f'node {state}', output_values)
    elif stalled:
        reasons = [
            f'{event.value}: {message}'
            for event, message in snapshot.recent.items()
            if event not in (Event.SKIPPED_RATE,)
        ]
        reason = '; '.join(reasons) if reasons else 'the pipeline has not returned a result'
        output_status = StatusReport(
            'output',
            Level.ERROR,
            f'images arrive but nothing was published for {snapshot.since_output_s:.1f} s '
            f'({reason})',
            output_values,
        )
    elif Event.PIPELINE_ERROR in snapshot.recent or Event.PUBLISH_ERROR in snapshot.recent:
        event = (
            Event.PIPELINE_ERROR
            if Event.PIPELINE_ERROR in snapshot.recent
            else Event.PUBLISH_ERROR
        )
        output_status = StatusReport(
            'output', Level.WARN, f'{event.value}: {snapshot.recent[event]}', output_values
        )
    else:
        output_status = StatusReport('output', Level.OK, 'publishing', output_values)

    latency_values = (
        ('latency p50 (ms)', _ms(snapshot.latency_p50_ms)),
        ('latency p95 (ms)', _ms(snapshot.latency_p95_ms)),
        ('latency max (ms)', _ms(snapshot.latency_max_ms)),
        ('latency warn (ms)', f'{settings.latency_warn_ms:g}'),
    )
    if math.isnan(snapshot.latency_p95_ms):
        latency_status = StatusReport(
            'latency', Level.OK, 'no output in the window', latency_values
        )
    elif snapshot.latency_p95_ms > settings.latency_warn_ms:
        latency_status = StatusReport(
            'latency',
            Level.WARN,
            f'p95 latency {snapshot.latency_p95_ms:.1f} ms above {settings.latency_warn_ms:g} ms',
            latency_values,
        )
    else:
        latency_status = StatusReport(
            'latency', Level.OK, f'p95 latency {snapshot.latency_p95_ms:.1f} ms', latency_values
        )

    if model is None:
        model_status = StatusReport('model', Level.OK, 'not loaded', ())
    else:
        model_values = (
            ('backend', model.backend),
            ('device', model.device),
            ('precision', model.precision),
            ('model', model.model_version),
            ('adapters', model.adapters),
            ('files', ', '.join(model.files) or 'none'),
            ('synthetic weights', str(model.synthetic_weights).lower()),
        )
        if model.synthetic_weights:
            model_status = StatusReport(
                'model',
                Level.WARN,
                f'generated stand-in weights, outputs are meaningless: {model.weights_note}',
                model_values,
            )
        else:
            model_status = StatusReport(
                'model', Level.OK, f'{model.model_version} on {model.device}', model_values
            )
    return [input_status, output_status, latency_status, model_status]


def diagnostic_array(
    reports: Sequence[StatusReport], stamp: Any, node_name: str, hardware_id: str
) -> Any:
    """``diagnostic_msgs/DiagnosticArray`` of the statuses, named ``<node>: <status>``."""
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

    message = DiagnosticArray()
    message.header.stamp = stamp
    for report in reports:
        status = DiagnosticStatus()
        status.level = bytes([int(report.level)])
        status.name = f'{node_name}: {report.name}'
        status.message = report.message
        status.hardware_id = hardware_id
        status.values = [KeyValue(key=key, value=value) for key, value in report.values]
        message.status.append(status)
    return message
