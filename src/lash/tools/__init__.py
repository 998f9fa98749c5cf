"""The tool layer: the tool contract, ``@tool``, the catalog, dispatch and output projection.

Built-in workspace tools live in :mod:`lash.tools.builtin`.
"""

from lash.tools.base import Tool, ToolContext, ToolError, ToolProvider, ToolRetryPolicy
from lash.tools.catalog import DuplicateToolError, ToolCatalog
from lash.tools.decorator import FunctionTool, SchemaError, tool
from lash.tools.dispatch import execute_tool_call, retry_delay_ms
from lash.tools.grants import ToolExecutionGrant
from lash.tools.pending import pending
from lash.tools.projection import project_output, render_output, truncate_text

__all__ = [
    "DuplicateToolError",
    "FunctionTool",
    "SchemaError",
    "Tool",
    "ToolCatalog",
    "ToolContext",
    "ToolError",
    "ToolExecutionGrant",
    "ToolProvider",
    "ToolRetryPolicy",
    "execute_tool_call",
    "pending",
    "project_output",
    "render_output",
    "retry_delay_ms",
    "tool",
    "truncate_text",
]
