"""The three servers ``mcp_throughput.py`` compares, each run as its own uvicorn process."""
