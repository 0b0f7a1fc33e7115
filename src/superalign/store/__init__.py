"""Run store (SQLite), JSONL exchange files and the HTML report."""
