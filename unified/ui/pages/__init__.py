"""The web pages, one module per part of the UI; ``unified.ui.web`` mounts them."""
