"""两定机构: designation agreements, assessment, catalogue versions, prices, and paying institutions (issue 18)."""
