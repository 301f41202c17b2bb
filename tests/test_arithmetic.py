"""The restricted evaluator of the verifier's arithmetic programs: what it computes, what it refuses."""

from __future__ import annotations

import pytest

from synthboot.arithmetic import Limits, ProgramError, evaluate


@pytest.mark.parametrize(("program", "value"), [
    ("3 * 12 - 10", 26),
    ("boxes = 3\npencils = boxes * 12\nanswer = pencils - 10", 26),
    ("answer = 90 / 15", 6.0),
    ("7 // 2 + 7 % 2", 4),
    ("2 ** 10", 1024),
    ("-(4 - 9) + +1", 6),
    ("x = 1\nx += 2\nx *= 5\nx", 15),
    ("total: int = 40\ntotal - 2", 38),
    ("result = 5\nother = 7", 5),                          # `result` names the answer too
    ("a = 4\nb = a * 3", 12),                               # else the last assignment
    ("a = 4\na + 1\nb = 100", 5),                           # else the last bare expression
    ("a = 4\nprint(a * 2)", 8),
    ("```python\nanswer = 2 + 2\n```", 4),                  # a Markdown fence is dropped
    ("import math\nanswer = math.ceil(7 / 2)", 4),
    ("from math import floor\nanswer = floor(7 / 2)", 3),
    ("round(2.567, 2)", 2.57),
    ("round(2.5) + abs(-3) + int(4.9)", 9),
    ("min(3, 8) + max([1, 5, 2]) + sum((1, 2, 3))", 14),
    ("sqrt(16)", 4.0),
    ("0.1 + 0.2", 0.1 + 0.2),
])
def test_allowed_arithmetic(program, value):
    assert evaluate(program) == value


@pytest.mark.parametrize(("program", "message"), [
    ("import os", "Import statements"),
    ("from os import path", "ImportFrom statements"),
    ("__import__('os')", "calls to '__import__'"),
    ("__import__('os').system('true')", "only calls to named arithmetic functions"),
    ("open('/etc/passwd')", "calls to 'open'"),
    ("eval('1+1')", "calls to 'eval'"),
    ("(1).__class__", "Attribute expressions"),
    ("math.pi", "Attribute expressions"),
    ("os.system('true')", "only calls to named arithmetic functions"),
    ("'a' * 3", "only numbers"),
    ("True + 1", "only numbers"),
    ("[1, 2]", "List expressions"),
    ("x[0]", "Subscript expressions"),
    ("1 < 2", "Compare expressions"),
    ("lambda: 1", "Lambda expressions"),
    ("for i in range(3):\n    pass", "For statements"),
    ("while True:\n    pass", "While statements"),
    ("def f():\n    return 1", "FunctionDef statements"),
    ("y + 1", "name 'y' is not assigned"),
    ("a, b = 1, 2", "one plain name"),
    ("abs = 3", "cannot assign to 'abs'"),
    ("round(2.5, ndigits=1)", "keyword arguments"),
    ("1 / 0", "division by zero"),
    ("5 % 0", "division by zero"),
    ("(-8) ** 0.5", "not a real number"),
    ("sqrt(-1)", "negative"),
    ("x = 3", None),  # allowed: a control that the refusals above are not the parser failing
    ("", "empty program"),
    ("answer = (", "not Python"),
])
def test_refused_constructs(program, message):
    if message is None:
        assert evaluate(program) == 3
        return
    with pytest.raises(ProgramError, match=message.replace("(", r"\(").replace(")", r"\)")):
        evaluate(program)


def test_bounds():
    with pytest.raises(ProgramError, match="out of bounds"):
        evaluate("9 ** 9 ** 9")                       # would take minutes and gigabytes
    with pytest.raises(ProgramError, match="out of bounds"):
        evaluate("2 ** 100")                          # exponent above the limit
    with pytest.raises(ProgramError, match="out of bounds"):
        evaluate("10 ** 30")                          # magnitude above 1e18 before it is computed
    assert evaluate("10 ** 18") == 10 ** 18
    with pytest.raises(ProgramError, match="beyond"):
        evaluate("a = 10 ** 18\na * 10")
    with pytest.raises(ProgramError, match="finite|beyond"):
        evaluate("1e308 * 10")
    with pytest.raises(ProgramError, match="longer than 2000 characters"):
        evaluate("1 + " * 600 + "1")
    with pytest.raises(ProgramError, match="more than 600 syntax nodes"):
        evaluate("\n".join(["1+1"] * 150))  # 600 characters, 751 nodes
    with pytest.raises(ProgramError, match="not Python"):
        evaluate("(" * 1000 + "1" + ")" * 1000, Limits(max_chars=10_000))  # nesting too deep for the parser
    with pytest.raises(ProgramError, match="ran longer than"):
        evaluate("x = 1\n" + "x = x * 1\n" * 50, Limits(seconds=0.0))
