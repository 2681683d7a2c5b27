is 561 a prime number?
