greatest common divisor of 84 and 36
