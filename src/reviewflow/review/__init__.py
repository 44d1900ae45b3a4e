"""Review checks usable as `python` tasks (`call: reviewflow.review.checks:<name>`)."""
