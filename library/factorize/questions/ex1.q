What is the prime factorization of 360?
