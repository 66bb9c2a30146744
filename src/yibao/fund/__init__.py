"""Fund operation (基金运行): contributions, monthly income and expense, months of payout, warnings, projection."""
