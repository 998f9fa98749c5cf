"""The tool layer: the tool contract, ``@tool``, the catalog, dispatch and output projection.

Built-in workspace tools live in :mod:`lash.tools.builtin`.
"""

from lash.tools.base import Tool, ToolContext, ToolError, ToolProvider, ToolRetryPolicy
from lash.tools.catalog import DuplicateToolError, ToolCatalog
from lash.tools.decorator import FunctionTool, SchemaError, tool
from lash.tools.dispatch import execute_tool_call, retry_delay_ms
from lash.tools.grants import ToolExecutionGrant
from lash.tools.membership import ToolManifest, ToolState, ToolStateEntry
from lash.tools.pending import pending
from lash.tools.projection import project_output, render_output, truncate_text
from lash.tools.registry import ToolRegistry, ToolRestoreReport, project_tool_catalog, with_tool_id

__all__ = [
    "DuplicateToolError",
    "FunctionTool",
    "SchemaError",
    "Tool",
    "ToolCatalog",
    "ToolContext",
    "ToolError",
    "ToolExecutionGrant",
    "ToolManifest",
    "ToolProvider",
    "ToolRegistry",
    "ToolRestoreReport",
    "ToolRetryPolicy",
    "ToolState",
    "ToolStateEntry",
    "execute_tool_call",
    "pending",
    "project_output",
    "project_tool_catalog",
    "render_output",
    "retry_delay_ms",
    "tool",
    "truncate_text",
    "with_tool_id",
]
