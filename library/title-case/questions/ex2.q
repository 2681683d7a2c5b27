title case hello world
