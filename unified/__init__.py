"""unified: a workflow orchestrator that runs in-process, on SQLite, or across machines on PostgreSQL.

This module stays light: importing it loads neither SQLAlchemy nor any web framework.
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
