"""Command line: server-side commands (serve, users, app-passwords, connections, audit)."""
