"""Evaluate a short arithmetic program an LM wrote, and nothing else.

The program-of-thought verifier (synthboot.stages.verify_pot) asks the verifier LM for a few lines
of Python that compute a numeric answer; this module runs them without running Python: the text
is parsed with `ast` and walked by a small interpreter that knows only

- int and float literals, names bound by earlier assignments;
- `+ - * / // % **` and unary `+ -`, parentheses;
- assignments to one plain name (`x = ...`, `x += ...`);
- calls to `abs round min max int float floor ceil sqrt sum` (also spelt `math.floor` etc.;
  `import math` / `from math import ...` of those names are accepted as no-ops), with list or
  tuple literals only as their arguments;
- `print(x)` as a statement, read as the value of `x`.

Anything else (other imports, attributes, other calls, strings, comparisons, loops, functions,
subscripts, lambdas, ...) is refused with `ProgramError`. Bounds keep every program cheap: its
length, its number of syntax nodes, exponents and magnitudes, and a wall-clock deadline.

The result is the value assigned to `answer` (or `result`), else the last bare expression or
print, else the last assignment.
"""

from __future__ import annotations

import ast
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Number = int | float


class ProgramError(ValueError):
    """The program is not one this evaluator runs, or it failed (division by zero, a bound)."""


@dataclass(frozen=True)
class Limits:
    max_chars: int = 2_000
    max_nodes: int = 600
    max_exponent: float = 64
    max_magnitude: float = 1e18
    seconds: float = 0.5


DEFAULT_LIMITS = Limits()
RESULT_NAMES = ("answer", "result")


def _round(value: Number, digits: Number = 0) -> Number:
    if not isinstance(digits, int) or not -20 <= digits <= 20:
        raise ProgramError("round(): digits must be a whole number between -20 and 20")
    return round(value) if digits == 0 else round(value, digits)


def _sqrt(value: Number) -> float:
    if value < 0:
        raise ProgramError("sqrt() of a negative number")
    return math.sqrt(value)


def _sum(*values: Number) -> Number:
    return sum(values)


FUNCTIONS: dict[str, Callable[..., Number]] = {
    "abs": abs, "round": _round, "min": min, "max": max, "int": int, "float": float,
    "floor": math.floor, "ceil": math.ceil, "sqrt": _sqrt, "sum": _sum,
}
_OPERATORS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b, ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b, ast.FloorDiv: lambda a, b: a // b, ast.Mod: lambda a, b: a % b,
    ast.Pow: lambda a, b: a ** b,
}
_FENCE = re.compile(r"^\s*```[a-zA-Z]*\s*\n?|\n?\s*```\s*$")


def strip_fences(text: str) -> str:
    """The code inside a Markdown fence (a model often adds one), else the text itself."""
    return _FENCE.sub("", text.strip()).strip()


def evaluate(program: str, limits: Limits = DEFAULT_LIMITS) -> Number:
    """The number `program` computes; raises `ProgramError` for anything it may not do."""
    text = strip_fences(program)
    if not text:
        raise ProgramError("empty program")
    if len(text) > limits.max_chars:
        raise ProgramError(f"program longer than {limits.max_chars} characters")
    try:
        tree = ast.parse(text, mode="exec")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        raise ProgramError(f"not Python: {type(exc).__name__}: {exc}") from None
    if sum(1 for _ in ast.walk(tree)) > limits.max_nodes:
        raise ProgramError(f"program has more than {limits.max_nodes} syntax nodes")
    return _Interpreter(limits).run(tree)


class _Interpreter:
    def __init__(self, limits: Limits):
        self.limits = limits
        self.deadline = time.monotonic() + limits.seconds
        self.names: dict[str, Number] = {}

    def run(self, tree: ast.Module) -> Number:
        shown: Number | None = None     # the last bare expression or print
        assigned: Number | None = None  # the last assignment
        for statement in tree.body:
            value = self.statement(statement)
            if value is not None and isinstance(statement, ast.Expr):
                shown = value
            elif value is not None:
                assigned = value
        for name in RESULT_NAMES:
            if name in self.names:
                return self.names[name]
        result = shown if shown is not None else assigned
        if result is None:
            raise ProgramError("the program computes no value")
        return result

    def statement(self, node: ast.stmt) -> Number | None:
        if isinstance(node, ast.Assign):
            if len(node.targets) != 1 or not isinstance(node.targets[0], ast.Name):
                raise ProgramError("only assignments to one plain name are allowed")
            return self.bind(node.targets[0].id, self.expression(node.value))
        if isinstance(node, ast.AugAssign):
            if not isinstance(node.target, ast.Name) or node.target.id not in self.names:
                raise ProgramError("`x op= value` needs a name assigned before")
            return self.bind(node.target.id, self.binary(node.op, self.names[node.target.id],
                                                         self.expression(node.value)))
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            return self.bind(node.target.id, self.expression(node.value))
        if isinstance(node, ast.Expr):
            value = node.value
            if (isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id == "print"
                    and len(value.args) == 1 and not value.keywords):
                value = value.args[0]
            return self.expression(value)
        if isinstance(node, ast.Import) and all(a.name == "math" and a.asname is None for a in node.names):
            return None  # `math.floor` etc. are known names already
        if isinstance(node, ast.ImportFrom) and node.module == "math" and all(
                a.name in FUNCTIONS and a.asname is None for a in node.names):
            return None
        raise ProgramError(f"{type(node).__name__} statements are not allowed")

    def bind(self, name: str, value: Number) -> Number:
        if name in FUNCTIONS or name.startswith("_") or name == "math":
            raise ProgramError(f"cannot assign to {name!r}")
        self.names[name] = value
        return value

    def expression(self, node: ast.expr) -> Number:
        if time.monotonic() > self.deadline:
            raise ProgramError(f"program ran longer than {self.limits.seconds} s")
        if isinstance(node, ast.Constant):
            if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
                raise ProgramError(f"only numbers are allowed, not {node.value!r}")
            return self.checked(node.value)
        if isinstance(node, ast.Name):
            if node.id not in self.names:
                raise ProgramError(f"name {node.id!r} is not assigned")
            return self.names[node.id]
        if isinstance(node, ast.BinOp):
            return self.binary(node.op, self.expression(node.left), self.expression(node.right))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            value = self.expression(node.operand)
            return -value if isinstance(node.op, ast.USub) else value
        if isinstance(node, ast.Call):
            return self.call(node)
        raise ProgramError(f"{type(node).__name__} expressions are not allowed")

    def call(self, node: ast.Call) -> Number:
        func = node.func
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id == "math":
            name = func.attr
        elif isinstance(func, ast.Name):
            name = func.id
        else:
            raise ProgramError("only calls to named arithmetic functions are allowed")
        if name not in FUNCTIONS:
            raise ProgramError(f"calls to {name!r} are not allowed")
        if node.keywords:
            raise ProgramError("keyword arguments are not allowed")
        args: list[Number] = []
        for arg in node.args:
            if isinstance(arg, (ast.List, ast.Tuple)) and name in ("min", "max", "sum") and len(node.args) == 1:
                args += [self.expression(e) for e in arg.elts]
            else:
                args.append(self.expression(arg))
        if not args:
            raise ProgramError(f"{name}() needs an argument")
        try:
            return self.checked(FUNCTIONS[name](*args))
        except (TypeError, ValueError, OverflowError) as exc:
            raise ProgramError(f"{name}(): {exc}") from None

    def binary(self, op: ast.operator, left: Number, right: Number) -> Number:
        operator = _OPERATORS.get(type(op))
        if operator is None:
            raise ProgramError(f"operator {type(op).__name__} is not allowed")
        if isinstance(op, ast.Pow) and (abs(right) > self.limits.max_exponent
                                        or (abs(left) > 1 and abs(right) * math.log10(abs(left))
                                            > math.log10(self.limits.max_magnitude))):
            raise ProgramError(f"{left} ** {right} is out of bounds")
        try:
            value = operator(left, right)
        except ZeroDivisionError:
            raise ProgramError("division by zero") from None
        except OverflowError:
            raise ProgramError("number out of bounds") from None
        return self.checked(value)

    def checked(self, value: Any) -> Number:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ProgramError(f"not a real number: {value!r}")
        if isinstance(value, float) and not math.isfinite(value):
            raise ProgramError("not a finite number")
        if abs(value) > self.limits.max_magnitude:
            raise ProgramError(f"number beyond {self.limits.max_magnitude:g}")
        return value
