"""JSON Schema validation of the documents mai-sr writes (bench results, model cards).

The standard is checked by the maintained `jsonschema` library (draft 2020-12); one rule is
added: a JSON number must be finite. Python's `json` writes NaN and Infinity, which are not
JSON and which plain JSON Schema accepts as numbers; a runtime or PSNR of NaN is a bug to
catch here, not a value to publish.
"""

from __future__ import annotations

import math


def _finite_number(checker, value) -> bool:
    """JSON Schema's "number", minus NaN and the infinities (booleans are not numbers)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return math.isfinite(value)


def _validator_class():
    # imported here: `jsonschema` costs ~0.1 s and only the writers of these documents need it
    from jsonschema import Draft202012Validator, validators

    checker = Draft202012Validator.TYPE_CHECKER.redefine("number", _finite_number)
    return validators.extend(Draft202012Validator, type_checker=checker)


def _where(root: str, path) -> str:
    return root + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)


def _leaves(error) -> list:
    """The errors to report for `error`: for anyOf, those of the branch that fitted best.

    A bench document is one result or an array of them; when a result breaks the schema,
    "expected array" from the other branch says nothing useful, so the branch whose type
    matched (fewest type errors at the document's own level, then fewest errors) is shown.
    """
    if not error.context:
        return [error]
    branches: dict = {}
    for sub in error.context:
        branches.setdefault(sub.relative_schema_path[0], []).append(sub)

    def badness(errors):
        top_type = sum(1 for e in errors if e.validator == "type" and not e.relative_path)
        return (top_type, len(errors))

    best = min(branches.values(), key=badness)
    return [leaf for sub in best for leaf in _leaves(sub)]


def _message(error) -> str:
    value = error.instance
    if error.validator == "type" and isinstance(value, float) and not math.isfinite(value):
        return f"{value} is not a finite number"
    return error.message


def schema_errors(value, schema: dict, root: str = "$") -> list[str]:
    """Where `value` breaks `schema`, one line each ("$.layers[0]: 'ms' is a required
    property"); empty when it conforms."""
    validator = _validator_class()(schema)
    return [f"{_where(root, leaf.absolute_path)}: {_message(leaf)}"
            for error in validator.iter_errors(value) for leaf in _leaves(error)]
