from __future__ import annotations

import pytest

from paraloom.cli.inputs import InputError, parse_inputs


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([], None),
        (['{"a": 1, "b": [2]}'], {"a": 1, "b": [2]}),
        (["[1, 2]"], [1, 2]),
        (["42"], 42),
        (["Write about tides"], "Write about tides"),
        (["x = 1 is an equation"], "x = 1 is an equation"),
        (
            ["a=1", "b=x", "c=[1,2]", "d=a=b", "e="],
            {"a": 1, "b": "x", "c": [1, 2], "d": "a=b", "e": ""},
        ),
        (["topic=home batteries"], {"topic": "home batteries"}),
    ],
)
def test_parse(values: list[str], expected: object) -> None:
    assert parse_inputs(values) == expected


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (["{not json"], "looks like JSON but is not valid"),
        (["a=1", "a=2"], "key 'a' given twice"),
        (["a=1", "plain"], "expected key=value when several --input are given"),
    ],
)
def test_errors(values: list[str], message: str) -> None:
    with pytest.raises(InputError, match=message):
        parse_inputs(values)
