convert the cat hat to title case
