"""May this caller do this? The apiserver asks once per request, as Kubernetes'
authorizer: who (the authenticated Identity, see skiff.daemon.auth) wants to do what
(verb) to which object (kind, namespace, name, subresource).

Today every authenticated caller may do everything (`AlwaysAllow`); RBAC plugs in here as
one more Authorizer, and nothing on the request path changes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

from apiserver import errors
from skiff.api import kinds
from skiff.daemon.auth import Identity

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Attributes:
    """What a request does, in Kubernetes' terms: verb is get, list, watch, create,
    update, delete; subresource is "" or status, binding, log, exec, portforward."""

    verb: str
    kind: kinds.Kind
    namespace: str = ""
    name: str = ""
    subresource: str = ""


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    reason: str = ""


class Authorizer(Protocol):
    def authorize(self, identity: Identity, attributes: Attributes) -> Decision: ...


class AlwaysAllow:
    def authorize(self, identity: Identity, attributes: Attributes) -> Decision:
        return Decision(True)


def check(authorizer: Authorizer, identity: Identity, attributes: Attributes) -> None:
    """Raises errors.ApiError (PERMISSION_DENIED, in kubectl's words) unless allowed."""
    a = attributes
    log.debug("%s: %s %s %s/%s%s", identity, a.verb, a.kind.kind, a.namespace, a.name,
              f" ({a.subresource})" if a.subresource else "")
    decision = authorizer.authorize(identity, attributes)
    if decision.allowed:
        return
    resource = a.kind.plural + (f"/{a.subresource}" if a.subresource else "")
    subject = f'{errors.resource(a.kind)} "{a.name}"' if a.name else errors.resource(a.kind)
    where = f' in the namespace "{a.namespace}"' if a.namespace else " at the cluster scope"
    message = (f'{subject} is forbidden: User "{identity.user}" cannot {a.verb} resource '
               f'"{resource}" in API group "{a.kind.group}"{where}')
    if decision.reason:
        message += f": {decision.reason}"
    raise errors.forbidden(message)
