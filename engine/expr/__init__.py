"""``${{ ... }}`` expressions: compiled once at load time, rendered in a sandbox.

See docs/expressions.md for the language. Nothing here does I/O.
"""

from __future__ import annotations

from engine.expr._analyse import CONTEXT_NAMES, STEP_FIELDS
from engine.expr._compile import (
    Compiled,
    ExprSyntaxErrors,
    ExprSyntaxIssue,
    compile_value,
    step_refs,
    truthy,
)
from engine.expr._scan import quoted_shquotes

__all__ = (
    "CONTEXT_NAMES",
    "STEP_FIELDS",
    "Compiled",
    "ExprSyntaxErrors",
    "ExprSyntaxIssue",
    "compile_value",
    "quoted_shquotes",
    "step_refs",
    "truthy",
)
