"""Domain core: users, roles, scopes, connections, credentials and audit. No HTTP here."""
