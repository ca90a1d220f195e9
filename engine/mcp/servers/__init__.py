"""MCP servers bundled with plait: files, web, data (console scripts plait-mcp-*)."""
