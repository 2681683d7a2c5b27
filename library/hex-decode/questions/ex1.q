hex decode 486921
