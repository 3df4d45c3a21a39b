"""Label selectors, and whether a selector selects its pod template."""

from __future__ import annotations

from collections.abc import Mapping

from skiff.api.selectors import SelectorError, label_selector_from_proto_like, validate_label_value
from skiff.api.v1 import core_pb2, meta_pb2
from skiff.api.validation.errors import Errors, forbidden, invalid, required
from skiff.api.validation.formats import qualified_name
from skiff.api.validation.meta import validate_labels


def validate_label_selector(selector: meta_pb2.LabelSelector, path: str) -> Errors:
    errs = validate_labels(selector.match_labels, f"{path}.matchLabels")
    for i, expr in enumerate(selector.match_expressions):
        expr_path = f"{path}.matchExpressions[{i}]"
        if expr.operator in ("In", "NotIn"):
            if not expr.values:
                errs.append(required(f"{expr_path}.values",
                                     "must be specified when `operator` is 'In' or 'NotIn'"))
        elif expr.operator in ("Exists", "DoesNotExist"):
            if expr.values:
                errs.append(forbidden(f"{expr_path}.values", "may not be specified when "
                                      "`operator` is 'Exists' or 'DoesNotExist'"))
        else:
            errs.append(invalid(f"{expr_path}.operator", expr.operator,
                                "not a valid selector operator"))
        errs += qualified_name(f"{expr_path}.key", expr.key)
        for j, value in enumerate(expr.values):
            errs += [invalid(f"{expr_path}.values[{j}]", value, msg)
                     for msg in validate_label_value(value)]
    return errs


def selector_matches(selector: meta_pb2.LabelSelector, labels: Mapping[str, str]) -> bool | None:
    """Whether the selector selects `labels`; None if it is not a valid selector."""
    try:
        parsed = label_selector_from_proto_like(selector.match_labels, selector.match_expressions)
    except SelectorError:
        return None
    return parsed.matches(labels)


def is_empty_selector(selector: meta_pb2.LabelSelector) -> bool:
    return not selector.match_labels and not selector.match_expressions


def selects_template(selector: meta_pb2.LabelSelector, template: core_pb2.PodTemplateSpec,
                     spec_path: str) -> Errors:
    labels = template.metadata.labels
    if selector_matches(selector, labels) is False:
        return [invalid(f"{spec_path}.template.metadata.labels", dict(labels),
                        "`selector` does not match template `labels`")]
    return []
