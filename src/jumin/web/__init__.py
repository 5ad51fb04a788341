"""The staff window (職員画面): server-rendered pages, templates and static assets."""
