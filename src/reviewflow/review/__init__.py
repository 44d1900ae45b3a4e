"""Code and content review: the change, the checks, the templates, the reports."""
