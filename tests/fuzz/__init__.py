"""Property-based fuzzing of every surface an outsider can reach (OAuth endpoints, sign-in,
device page, admin forms, ``/mcp``) against a real server on SQLite and PostgreSQL.

Each request must be answered without a 5xx, in the error shape its RFC or JSON-RPC
prescribes, and without a traceback in the server's log (``tests/server_log_guard.py``).
Examples are derandomized (the same inputs on every run) and bounded; set
``AICONNECTOR_FUZZ_EXAMPLES`` to run more (docs/security.md, "Fuzzing")."""
