least common multiple of 21 and 6
