"""User interfaces: the command line (``ui.ui``) and, later, the web pages (``ui.web``)."""
