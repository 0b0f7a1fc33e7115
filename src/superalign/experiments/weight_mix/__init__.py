"""weight-mix: competence × conformity by mixing two trained weight deltas (task arithmetic / rewarded soups)."""
