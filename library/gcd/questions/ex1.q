What is the GCD of 12 and 18?
