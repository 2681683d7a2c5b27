days between 2024-01-01 and 2024-03-01
