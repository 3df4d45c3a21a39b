"""Pod control decides on the apiserver's Status, not on the words of its message."""

from __future__ import annotations

from controllers.common.podcontrol import namespace_terminating
from skiff.api import status
from skiff.api.status import CauseType, StatusReason
from skiff.api.v1 import meta_pb2
from skiff.client import errors

WORDS = "unable to create new content in namespace x because it is being terminated"


def test_a_terminating_namespace_is_known_by_its_cause() -> None:
    cause = meta_pb2.StatusCause(reason=CauseType.NAMESPACE_TERMINATING, message=WORDS)
    terminating = status.failure(StatusReason.FORBIDDEN, "refused",
                                 meta_pb2.StatusDetails(causes=[cause]))
    assert namespace_terminating(errors.Forbidden("refused", status=terminating))
    # The same words without the cause (a webhook's, a quota's) are not the namespace's.
    other = status.failure(StatusReason.FORBIDDEN, WORDS)
    assert not namespace_terminating(errors.Forbidden(WORDS, status=other))
    assert not namespace_terminating(errors.Forbidden(WORDS))
