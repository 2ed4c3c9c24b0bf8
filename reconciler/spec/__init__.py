"""Task documents: discovery, bounded safe parsing, schema, typed models, error text.

The API other rooms use is re-exported here; the modules behind it are internal.
"""

from reconciler.spec.discovery import discover
from reconciler.spec.errors import SpecError
from reconciler.spec.loader import FileLoad, LoadResult, find_duplicates, load_file, load_paths
from reconciler.spec.schema import schema, schema_text
from reconciler.spec.task import FrozenDict, Task
from reconciler.spec.zones import host_zone

__all__ = [
    "FileLoad",
    "FrozenDict",
    "LoadResult",
    "SpecError",
    "Task",
    "discover",
    "find_duplicates",
    "host_zone",
    "load_file",
    "load_paths",
    "schema",
    "schema_text",
]
