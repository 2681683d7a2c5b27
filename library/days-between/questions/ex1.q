How many days are between 2026-01-01 and 2026-11-26?
