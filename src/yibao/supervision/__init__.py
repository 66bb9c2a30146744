"""Fund supervision: audit rules that run online (one visit) and in batch (whole claim tables)."""
