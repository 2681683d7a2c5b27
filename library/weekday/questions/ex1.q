What day of the week is 2024-02-29?
