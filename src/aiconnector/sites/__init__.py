"""Content backends behind one protocol (``base.SiteBackend``): the built-in site and WordPress."""
