"""The operator state contract of ``hmr_node`` (``operator_state``, msg/OperatorState.msg).

For every processed image the node publishes, besides the operator's wrist poses (only when
usable), one ``OperatorState`` that says per side whether those poses hold for that stamp and
why not, so a controller never has to infer "no operator" from silence. A side is valid only
when the operator chosen by ``operator.mode`` is ``TRACKED`` (observed in this image, not
coasting), its presence score (``Person.confidence``) passes ``detection.person_threshold`` and
the hand passes ``safety.min_hand_confidence``
(:func:`hmr_ros.ros.conversions.operator_hands` applies the same rule to what is published).
The first image in which that stops holding reports the reason at once: ``OPERATOR_NOT_SEEN``
while the track coasts, ``OPERATOR_LOST`` in the image its track ends in, then ``NO_OPERATOR``.

docs/teleoperation.md describes the contract for controller authors.
"""

from __future__ import annotations

import dataclasses

from builtin_interfaces.msg import Time

from hmr_ros.msg import OperatorState
from hmr_ros.pipeline.results import FrameResult, HandResult
from hmr_ros.pipeline.tracking import TrackState
from hmr_ros.ros.conversions import make_header

SIDES = ('left', 'right')


@dataclasses.dataclass(frozen=True)
class OperatorStatus:
    """What one OperatorState says (no ROS types).

    Attributes:
        track_id: The operator's track id, '' when there is none.
        person_confidence: The operator's presence score, 0 without an operator.
        reasons: ``OperatorState`` reason constant per side ('left', 'right'); ``OK`` = valid.
    """

    track_id: str
    person_confidence: float
    reasons: dict[str, int]

    def valid(self, side: str) -> bool:
        """Whether this side's outputs hold."""
        return self.reasons[side] == OperatorState.OK


def stopped_status(reason: int) -> OperatorStatus:
    """Both sides invalid for one reason (``INACTIVE``, ``PIPELINE_ERROR``), no operator."""
    return OperatorStatus('', 0.0, {side: reason for side in SIDES})


class OperatorStateTracker:
    """Turns each frame's operator choice and published hands into an :class:`OperatorStatus`.

    It remembers the previous operator, so the image in which that operator disappears from the
    tracker's output (or the selector drops it) is reported ``OPERATOR_LOST``, not merely
    ``NO_OPERATOR``. Not thread-safe: call it from the inference worker only.
    """

    def __init__(self) -> None:
        self._previous_id: str | None = None

    def reset(self) -> None:
        """Forget the previous operator (a new activation or a tracking reset)."""
        self._previous_id = None

    def update(
        self,
        result: FrameResult,
        operator_id: str | None,
        published_hands: dict[str, HandResult],
        *,
        operator_enabled: bool,
        person_threshold: float,
    ) -> OperatorStatus:
        """The state of one processed image.

        Args:
            result: The image's pipeline result.
            operator_id: The selector's choice for this image (None: nobody).
            published_hands: The operator hands published for this image, by side
                (:func:`hmr_ros.ros.conversions.operator_hands`).
            operator_enabled: False when ``operator.mode`` is 'none'.
            person_threshold: ``detection.person_threshold``.

        Returns:
            Track id, presence score and a reason per side.
        """
        previous, self._previous_id = self._previous_id, operator_id
        if not operator_enabled:
            return stopped_status(OperatorState.OPERATOR_DISABLED)
        persons = {person.track_id: person for person in result.persons}
        if operator_id is None:
            lost = previous is not None and (
                previous not in persons or persons[previous].tracking_state == TrackState.LOST
            )
            reason = OperatorState.OPERATOR_LOST if lost else OperatorState.NO_OPERATOR
            track_id = previous if lost and previous is not None else ''
            return OperatorStatus(track_id, 0.0, _both(reason))
        person = persons.get(operator_id)
        if person is None or person.tracking_state == TrackState.LOST:
            return OperatorStatus(operator_id, 0.0, _both(OperatorState.OPERATOR_LOST))
        confidence = float(person.confidence)
        if person.tracking_state == TrackState.PREDICTED:
            reason = OperatorState.OPERATOR_NOT_SEEN
        elif person.tracking_state != TrackState.TRACKED:
            reason = OperatorState.NO_OPERATOR
        elif confidence < person_threshold:
            reason = OperatorState.LOW_PERSON_SCORE
        else:
            return OperatorStatus(
                operator_id,
                confidence,
                {
                    side: OperatorState.OK
                    if side in published_hands
                    else OperatorState.HAND_NOT_USABLE
                    for side in SIDES
                },
            )
        return OperatorStatus(operator_id, confidence, _both(reason))


def _both(reason: int) -> dict[str, int]:
    return {side: reason for side in SIDES}


def operator_state_message(status: OperatorStatus, stamp: Time, frame_id: str) -> OperatorState:
    """``OperatorState`` of a status, stamped like the outputs it describes."""
    message = OperatorState()
    message.header = make_header(stamp, frame_id)
    message.track_id = status.track_id
    message.person_confidence = float(status.person_confidence)
    message.left_valid = status.valid('left')
    message.left_reason = int(status.reasons['left'])
    message.right_valid = status.valid('right')
    message.right_reason = int(status.reasons['right'])
    return message
