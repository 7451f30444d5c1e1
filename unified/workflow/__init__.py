"""Workflows: named, versioned task graphs (see ``unified.workflow.workflow``)."""
