what is binary 1010 in decimal
