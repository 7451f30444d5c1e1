"""The CLI's command groups, one module per noun; each works on the configured database through the managers."""
