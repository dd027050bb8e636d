"""Browser-facing pages: the public site view, and later sign-in, consent and admin."""
